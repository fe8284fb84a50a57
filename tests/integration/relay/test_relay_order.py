"""The relay puts the whole notification log on WL_EVENTS: every event once, in order, byte-exact."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import StoredEvent

from domain.actors import Actor
from domain.clock import ManualClock
from domain.service import CaseService
from infra.settings import Settings
from tests.integration.builders import drive
from tests.integration.relay.support import (
    NoLock,
    assert_stream_equals_log,
    insert_cases,
    running_relay,
    wait_until_relayed,
)
from tests.unit.builders import ASSISTING, ITEM, LEAD

pytestmark = pytest.mark.asyncio


async def test_ten_thousand_events_arrive_once_in_order(
    service: CaseService, relay_settings: Settings, template: list[StoredEvent]
) -> None:
    insert_cases(service, template, 10_000)
    async with running_relay(service, relay_settings) as relay:
        await wait_until_relayed(relay_settings.nats_url, service, timeout=60)
    stream = await assert_stream_equals_log(relay_settings.nats_url, service)
    assert len(stream) > 10_000
    assert relay.stats.relayed == len(stream)
    assert relay.stats.duplicates == 0
    assert relay.stats.last_notification_id == service.recorder.max_notification_id()


async def test_a_new_relay_finds_streets_of_cases_it_never_saw_reported(
    service: CaseService,
    relay_settings: Settings,
    clock: ManualClock,
    actors: dict[str, Actor],
) -> None:
    """Events of a case whose report was relayed by an earlier relay need the street from the store."""
    cases = [drive(service, clock, actors, "accepted").case_id for _ in range(3)]
    async with running_relay(service, relay_settings):
        await wait_until_relayed(relay_settings.nats_url, service, timeout=15)
    for case_id in cases:
        service.whistle(
            case_id, actors["street"], lead=LEAD, assisting=(ASSISTING,), duty_item=ITEM
        )
    async with running_relay(service, relay_settings, street_cache_size=2) as second:
        await wait_until_relayed(relay_settings.nats_url, service, timeout=15)
    await assert_stream_equals_log(relay_settings.nats_url, service)
    assert second.stats.relayed == len(cases)
    assert second.streets.misses == len(cases)


async def test_two_relays_that_both_think_they_lead_still_leave_the_stream_exact(
    service: CaseService, relay_settings: Settings, template: list[StoredEvent]
) -> None:
    """The lock is bypassed: the chain of expected predecessors alone keeps order and uniqueness."""
    settings = relay_settings.model_copy(update={"relay_batch": 50})
    insert_cases(service, template, 3000)
    async with (
        running_relay(service, settings, lock=NoLock()) as one,
        running_relay(service, settings, lock=NoLock()) as two,
    ):
        await wait_until_relayed(settings.nats_url, service, timeout=60)
    stream = await assert_stream_equals_log(settings.nats_url, service)
    assert one.stats.relayed + two.stats.relayed == len(stream)
