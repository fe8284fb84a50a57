"""One active relay per store: a second one stands by, and takes over when the first one dies."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy
from eventsourcing.persistence import StoredEvent
from sqlalchemy import text

from domain.actors import Actor
from domain.clock import ManualClock
from domain.service import CaseService
from infra.leader import FileLeaderLock, PgAdvisoryLeaderLock, advisory_key
from infra.settings import Settings
from infra.store import events_table, open_service
from tests.integration.builders import drive
from tests.integration.relay.support import (
    RelayProcess,
    assert_stream_equals_log,
    insert_cases,
    last_relayed,
    running_relay,
    wait_for,
    wait_until_relayed,
)

LEADING = "leading: this relay publishes"
STANDING_BY = "standing by: another process holds the lock"


@pytest.mark.asyncio
async def test_two_relays_only_one_publishes_and_the_other_takes_over(
    service: CaseService,
    relay_settings: Settings,
    template: list[StoredEvent],
    relay_procs: list[RelayProcess],
    tmp_path: Path,
) -> None:
    settings = relay_settings.model_copy(update={"relay_batch": 100})
    url = settings.nats_url
    insert_cases(service, template, 2000)
    first, second = (RelayProcess.start(settings, tmp_path / f"{n}.log") for n in "ab")
    relay_procs += [first, second]
    await wait_until_relayed(url, service, timeout=30)
    await wait_for(lambda: first.said(STANDING_BY) or second.said(STANDING_BY), 10, "a standby")
    active, standby = (first, second) if first.said(LEADING) else (second, first)
    assert active.batches()
    assert not standby.said(LEADING)
    assert not standby.batches()

    insert_cases(service, template, 10_000)
    mark = await last_relayed(url)
    await wait_for(lambda: _past(url, mark), 20, "the active relay to resume", interval=0.01)
    active.kill()
    await wait_for(lambda: standby.said(LEADING), 10, "the standby to take over")
    insert_cases(service, template, 200)  # work for the new leader even if the old one finished
    await wait_until_relayed(url, service, timeout=30)
    assert standby.batches()
    await assert_stream_equals_log(url, service)
    assert standby.stop() == 0  # SIGTERM: drains and exits cleanly
    assert standby.said("relay stopped")


async def _past(url: str, notification_id: int) -> bool:
    return await last_relayed(url) > notification_id


def test_file_lock_is_exclusive_until_released(tmp_path: Path) -> None:
    path = tmp_path / "relay.lock"
    with FileLeaderLock(path) as one, FileLeaderLock(path) as two:
        assert one.try_acquire()
        assert not two.try_acquire()
        one.release()
        assert two.try_acquire()
        assert not one.try_acquire()


@pytest.mark.postgres
def test_advisory_lock_is_lost_with_its_session(pg_relay_settings: Settings) -> None:
    """A killed session (e.g. a broken connection) frees the lock, and its holder notices."""
    url, key = pg_relay_settings.event_store_url(), advisory_key("some_schema.some_table")
    with PgAdvisoryLeaderLock(url, key, "t") as one, PgAdvisoryLeaderLock(url, key, "t") as two:
        assert one.try_acquire()
        assert not two.try_acquire()
        assert one.still_held()
        _terminate(url, one.backend_pid)
        assert not one.still_held()
        assert two.try_acquire()
        assert not one.try_acquire()


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_relay_stops_publishing_when_its_lock_connection_dies_then_leads_again(
    pg_relay_settings: Settings, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    settings, url = pg_relay_settings, pg_relay_settings.nats_url
    service = open_service(settings, clock)
    try:
        service.publish_duty_list()
        async with running_relay(service, settings) as relay:
            await wait_until_relayed(url, service, timeout=15)
            _terminate(settings.event_store_url(), _lock_holder(settings, service))
            await wait_for(lambda: relay.stats.leadership_lost == 1, 10, "the loss to be noticed")
            await wait_for(lambda: relay.stats.leading, 10, "leadership regained")
            drive(service, clock, actors, "accepted")
            await wait_until_relayed(url, service, timeout=15)
        await assert_stream_equals_log(url, service)
    finally:
        service.close()


def _lock_holder(settings: Settings, service: CaseService) -> int:
    """The backend pid holding the relay's advisory lock for this store (from pg_locks)."""
    key = advisory_key(events_table(service)) & (2**64 - 1)
    engine = sqlalchemy.create_engine(settings.event_store_url())
    try:
        with engine.connect() as conn:
            pid: int = conn.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid::bigint = :high AND objid::bigint = :low"
                ),
                {"high": key >> 32, "low": key & 0xFFFFFFFF},
            ).scalar_one()
            return pid
    finally:
        engine.dispose()


def _terminate(url: str, pid: int | None) -> None:
    assert pid is not None
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    finally:
        engine.dispose()
