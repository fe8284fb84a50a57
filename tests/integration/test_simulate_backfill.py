"""`whistleloop simulate --backfill DAYS`: history through `CaseService` on a fake clock, spread over
the last DAYS days up to the end given, the same for the same seed, and safe to run again on a store
that already holds cases (its cases are its own)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from domain.clock import CHINA_TZ
from infra.settings import Settings
from infra.simulator import backfill
from infra.store import open_service
from tests.integration.builders import fingerprint, notifications

SEED = 7
DAYS = 4
#: A Thursday afternoon in Beijing: the window covers working days and a weekend.
END = datetime(2026, 3, 12, 7, 30, tzinfo=UTC)


def _events(settings: Settings) -> list[tuple[datetime, str]]:
    """(time, topic) of every case event in the store."""
    service = open_service(settings)
    try:
        return [
            (_timestamp(service.mapper.to_domain_event(n)), n.topic)
            for n in notifications(service)
            if n.topic.startswith("whistleloop.case.")
        ]
    finally:
        service.close()


def _timestamp(event: Any) -> datetime:
    moment: datetime = event.timestamp
    return moment


def _rows(settings: Settings) -> list[tuple[int, str, int, str, bytes]]:
    service = open_service(settings)
    try:
        return fingerprint(service)
    finally:
        service.close()


def test_backfill_spreads_history_over_the_days_up_to_the_end(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    done = backfill(settings, SEED, DAYS, end=END)
    events = _events(settings)
    assert done.refused == {}
    assert done.events == len(events) > 300
    assert done.start == END - timedelta(days=DAYS)
    assert done.end == END
    times = [at for at, _topic in events]
    assert all(done.start <= at < END for at in times)
    days = Counter(at.astimezone(CHINA_TZ).date() for at in times)
    assert len(days) == DAYS + 1  # the partial first and last days included
    assert max(times) > END - timedelta(hours=12)  # history reaches now
    kinds = Counter(topic.rsplit(".", 1)[1] for _at, topic in events)
    for kind in ("CaseReported", "Whistled", "ReportedIn", "HandlingReported", "Closed", "Rated"):
        assert kinds[kind] > 0, (kind, kinds)
    assert f"backfill: {done.events} events, {done.cases} cases" in done.summary()


def test_the_same_seed_gives_the_same_events(tmp_path: Path) -> None:
    first, second, other = (Settings(var_dir=tmp_path / name) for name in ("a", "b", "c"))
    backfill(first, SEED, 2, end=END)
    backfill(second, SEED, 2, end=END)
    backfill(other, SEED + 1, 2, end=END)
    rows = _rows(first)
    assert rows == _rows(second)
    assert {r[1] for r in rows[1:]}.isdisjoint({r[1] for r in _rows(other)[1:]})


def test_a_second_backfill_adds_its_own_cases_to_a_used_store(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    first = backfill(settings, SEED, 1, end=END)
    second = backfill(settings, SEED, 1, end=END + timedelta(hours=1))
    assert first.refused == second.refused == {}
    rows = _rows(settings)
    duty_lists = [r for r in rows if not r[3].startswith("whistleloop.case.")]
    assert len(duty_lists) == 1  # published once, found the second time
    assert len(rows) == 1 + first.events + second.events
    assert len({r[1] for r in rows}) == 1 + first.cases + second.cases
