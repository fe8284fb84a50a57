"""Concurrent writers on one case: legal commands all land, non-repeatable ones land once.

The thread tests force the race instead of hoping for it: each service's first save waits at a barrier
until every writer has loaded the case and decided, so all but one save from a stale version and must
go through the service's retry. The process test runs separate interpreters on the same store.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError

from domain.actors import Actor
from domain.clock import ManualClock
from domain.errors import DomainError, IllegalState
from domain.reference import DutyItem
from domain.service import CaseService
from infra.settings import Settings
from infra.store import open_service
from tests.integration.builders import drive, notifications, report_case, topic_of
from tests.integration.workers import TOKEN_FIELDS, Outcome, WriterPlan, run_writer
from tests.unit.builders import ASSISTING, ITEM, LEAD, RECEIVER, dept

Outcomes = list[int | UUID | DomainError]


class SaveRace:
    """Holds the first save of each service until all have reached theirs, and counts conflicts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, services: list[CaseService]) -> None:
        self.barrier = threading.Barrier(len(services), timeout=15)
        self.conflicts = 0
        self._lock = threading.Lock()
        for service in services:
            monkeypatch.setattr(service, "save", self._gated(service.save))

    def _gated(self, save: Callable[..., Any]) -> Callable[..., Any]:
        first = [True]

        def gated(*objs: Any, **kwargs: Any) -> Any:
            if first[0]:
                first[0] = False
                self.barrier.wait()
            try:
                return save(*objs, **kwargs)
            except IntegrityError:
                with self._lock:
                    self.conflicts += 1
                raise

        return gated


def _at_once(*commands: Callable[[], int | UUID]) -> Outcomes:
    """Runs the commands in threads at the same time; a domain error is an outcome, not a failure."""

    def attempt(command: Callable[[], int | UUID]) -> int | UUID | DomainError:
        try:
            return command()
        except DomainError as refused:
            return refused

    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(attempt, commands))


@pytest.fixture
def writers(
    service: CaseService, store_settings: Settings, clock: ManualClock
) -> Iterator[list[CaseService]]:
    """Three services on the store: the fixture's and two more, as separate processes would have."""
    others = [open_service(store_settings, clock) for _ in range(2)]
    yield [service, *others]
    for other in others:
        other.close()


def _versions(service: CaseService, case_id: UUID) -> list[int]:
    return [n.originator_version for n in notifications(service) if n.originator_id == case_id]


def _assert_consistent(service: CaseService, settings: Settings, case_id: UUID) -> dict[str, Any]:
    """Versions 1..N with no gap or repeat, and a new service reads what the writers left."""
    versions = _versions(service, case_id)
    assert versions == list(range(1, len(versions) + 1))
    fresh = open_service(settings, service.clock)
    try:
        state = fresh.case(case_id)
        assert state["version"] == len(versions)
        assert [r["version"] for r in fresh.history(case_id)] == versions
    finally:
        fresh.close()
    assert service.case(case_id) == state
    return state


def _whistled_with_two_assisting(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> UUID:
    case_id = drive(service, clock, actors, "accepted").case_id
    service.whistle(
        case_id, actors["street"], lead=LEAD, assisting=(ASSISTING, RECEIVER), duty_item=ITEM
    )
    return case_id


# --- different legal commands at once: both recorded ---------------------------------------------


def test_two_assisting_departments_report_in_at_once(
    writers: list[CaseService],
    store_settings: Settings,
    clock: ManualClock,
    actors: dict[str, Actor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = writers[:2]
    case_id = _whistled_with_two_assisting(first, clock, actors)
    race = SaveRace(monkeypatch, [first, second])

    outcomes = _at_once(
        lambda: first.report_in(case_id, dept(ASSISTING), "on_site", "住建到场"),
        lambda: second.report_in(case_id, dept(RECEIVER), "remote", "规自远程报到"),
    )

    assert sorted(o for o in outcomes if isinstance(o, int)) == [4, 5]
    assert race.conflicts == 1
    state = _assert_consistent(first, store_settings, case_id)
    assert state["version"] == 5
    for department in (ASSISTING, RECEIVER):
        assert state["obligations"][department]["reported_in_at"] is not None
    assert state["obligations"][LEAD]["reported_in_at"] is None
    reported = [r["payload"]["department"] for r in first.history(case_id)[3:]]
    assert sorted(reported) == sorted([ASSISTING, RECEIVER])


def test_lead_reports_in_while_the_command_centre_supervises(
    writers: list[CaseService],
    store_settings: Settings,
    clock: ManualClock,
    actors: dict[str, Actor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = writers[:2]
    case_id = drive(first, clock, actors, "whistled").case_id
    race = SaveRace(monkeypatch, [first, second])

    outcomes = _at_once(
        lambda: second.issue_supervision(case_id, actors["centre"], "white", LEAD, "请尽快报到"),
        lambda: first.report_in(case_id, dept(LEAD), "on_site", "已到场"),
    )

    assert sorted(o for o in outcomes if isinstance(o, int)) == [4, 5]
    assert race.conflicts == 1
    state = _assert_consistent(first, store_settings, case_id)
    assert state["status"] == "in_handling"
    assert sorted(r["type"] for r in first.history(case_id)[3:]) == [
        "ReportedIn",
        "SupervisionIssued",
    ]


# --- the same non-repeatable command at once: exactly one ----------------------------------------


RACES: dict[str, tuple[str, Callable[[CaseService, UUID, dict[str, Actor]], int], str, str]] = {
    "both close": (
        "handled",
        lambda s, c, a: s.close_case(c, a["street"], "核查通过"),
        "Closed",
        "illegal_transition",
    ),
    "lead reports in twice": (
        "whistled",
        lambda s, c, a: s.report_in(c, dept(LEAD), "on_site"),
        "ReportedIn",
        "already_reported_in",
    ),
    "resident rates twice": (
        "closed",
        lambda s, c, a: s.rate_by_resident(c, a["resident"], "satisfied", True),
        "Rated",
        "already_rated",
    ),
    "two SLA clocks record one miss": (
        "whistled",
        lambda s, c, a: s.record_deadline_missed(c, a["system"], LEAD, "response"),
        "DeadlineMissed",
        "already_recorded",
    ),
    "every writer accepts": (
        "reported",
        lambda s, c, a: s.accept(c, a["street"]),
        "CaseAccepted",
        "illegal_transition",
    ),
}


@pytest.mark.parametrize("race_name", list(RACES))
def test_racing_the_same_command_records_it_once(
    race_name: str,
    writers: list[CaseService],
    store_settings: Settings,
    clock: ManualClock,
    actors: dict[str, Actor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stage, command, event, code = RACES[race_name]
    case_id = drive(writers[0], clock, actors, stage).case_id
    clock.advance(timedelta(hours=25))  # past the response deadline, for the SLA clocks
    before = _versions(writers[0], case_id)
    race = SaveRace(monkeypatch, writers)

    outcomes = _at_once(*[lambda w=w: command(w, case_id, actors) for w in writers])

    won = [o for o in outcomes if isinstance(o, int)]
    lost = [o for o in outcomes if isinstance(o, DomainError)]
    assert won == [len(before) + 1]
    assert len(lost) == len(writers) - 1
    for refused in lost:
        assert type(refused) is IllegalState
        assert refused.code == code
    assert race.conflicts == len(writers) - 1
    state = _assert_consistent(writers[0], store_settings, case_id)
    assert state["version"] == len(before) + 1
    assert [r["type"] for r in writers[0].history(case_id)].count(event) == 1


def test_a_retried_report_racing_itself_is_one_case(
    writers: list[CaseService],
    clock: ManualClock,
    actors: dict[str, Actor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    race = SaveRace(monkeypatch, writers)
    key = "12345-20260302-0042"

    outcomes = _at_once(*[lambda w=w: report_case(w, actors, idempotency_key=key) for w in writers])

    assert len(set(outcomes)) == 1
    (case_id,) = set(outcomes)
    assert isinstance(case_id, UUID)
    assert race.conflicts == len(writers) - 1
    reports = [
        n.originator_id for n in notifications(writers[0]) if n.topic == topic_of("CaseReported")
    ]
    assert reports == [case_id]
    for writer in writers:
        assert writer.case(case_id)["version"] == 1


def test_a_stale_cache_is_refused_by_the_store_and_retried(
    writers: list[CaseService],
    store_settings: Settings,
    clock: ManualClock,
    actors: dict[str, Actor],
) -> None:
    """One service caches the case, another moves it on; the first still decides on the stored state."""
    first, second = writers[:2]
    case_id = _whistled_with_two_assisting(first, clock, actors)
    second.report_in(case_id, dept(ASSISTING), "on_site")
    second.report_in(case_id, dept(LEAD), "on_site")  # in handling now

    with pytest.raises(IllegalState) as again:  # legal on first's cached copy, not in the store
        first.report_in(case_id, dept(ASSISTING), "remote")
    assert again.value.code == "already_reported_in"
    assert first.report_handling(case_id, dept(LEAD), "resolved") == 6
    assert _assert_consistent(first, store_settings, case_id)["status"] == "handled"


def test_services_starting_together_publish_the_duty_list_once(
    store_settings: Settings, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an empty store (no `service` fixture here), every starting process publishes version 1."""
    starting = [open_service(store_settings, clock) for _ in range(3)]
    try:
        race = SaveRace(monkeypatch, starting)
        assert _at_once(*[s.publish_duty_list for s in starting]) == [1, 1, 1]
        assert race.conflicts == 2
        (row,) = notifications(starting[0])
        assert (row.topic, row.originator_version) == ("whistleloop.duty_list.Published", 1)
        for service in starting:
            assert service.duty_items()[0] == 1
    finally:
        for service in starting:
            service.close()


def test_two_legal_revisions_at_once_are_both_recorded(
    writers: list[CaseService], actors: dict[str, Actor], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = writers[:2]
    items = first.reference.duty_items
    tightened = replace(items[ITEM], handling_limit_working_days=3)
    loosened = replace(items["CG-002"], handling_limit_working_days=4)
    SaveRace(monkeypatch, [first, second])

    def revise(service: CaseService, change: DutyItem) -> int:
        return service.revise_duty_list(
            actors["centre"], effective=date(2026, 3, 9), changed=[change], reason="调整"
        )

    outcomes = _at_once(lambda: revise(first, tightened), lambda: revise(second, loosened))
    for outcome in outcomes:
        if isinstance(outcome, DomainError):
            raise outcome
    assert sorted(o for o in outcomes if isinstance(o, int)) == [2, 3]


# --- separate processes -------------------------------------------------------------------------

PROCESSES = 3
OWN_CASES = 4
SHARED_ASSISTING = ("zj", "ghzr", "sthj")


def test_writer_processes_lose_nothing_and_repeat_nothing(
    service: CaseService, store_settings: Settings, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    shared = drive(service, clock, actors, "accepted").case_id
    service.whistle(shared, actors["street"], lead=LEAD, assisting=SHARED_ASSISTING, duty_item=ITEM)
    base = len(_versions(service, shared))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES, timeout=60), ctx.Queue()
    plans = [
        WriterPlan(
            i, store_settings, clock.now(), str(shared), SHARED_ASSISTING[i], LEAD, OWN_CASES
        )
        for i in range(PROCESSES)
    ]
    processes = [ctx.Process(target=run_writer, args=(p, barrier, results)) for p in plans]
    for process in processes:
        process.start()
    try:
        reports = dict(results.get(timeout=90) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    failures = {i: r for i, r in reports.items() if isinstance(r, str)}
    assert not failures, failures
    outcomes: list[Outcome] = [o for i in range(PROCESSES) for o in reports[i]]

    found: dict[str, list[tuple[str, int]]] = defaultdict(list)
    versions: dict[str, list[int]] = defaultdict(list)
    for notification in notifications(service):
        versions[str(notification.originator_id)].append(notification.originator_version)
        event = service.mapper.to_domain_event(notification)
        for name in TOKEN_FIELDS:
            value = getattr(event, name, None)
            if isinstance(value, str) and value.startswith("w"):
                found[value].append(
                    (str(notification.originator_id), notification.originator_version)
                )

    done = [o for o in outcomes if o.code is None]
    refused = [o for o in outcomes if o.code is not None]
    for outcome in done:
        assert found[outcome.token] == [(outcome.case_id, outcome.version)], outcome
    for outcome in refused:
        assert outcome.code in ("already_reported_in", "concurrent_modification"), outcome
        assert outcome.token not in found, outcome
    assert len(found) == len(done)
    contested = [o for o in outcomes if o.token.endswith("-contested")]
    assert len(contested) == PROCESSES
    assert [o.code for o in contested].count(None) == 1
    assert all(o.code in (None, "already_reported_in") for o in contested)
    for case_id, numbers in versions.items():
        assert numbers == list(range(1, len(numbers) + 1)), case_id
    shared_done = Counter(o.case_id for o in done)[str(shared)]
    assert len(versions[str(shared)]) == base + shared_done
    assert all(o.case_id == str(shared) for o in outcomes if o.code is not None)
    assert len([o for o in done if o.token.endswith("-close")]) == PROCESSES * OWN_CASES
    state = _assert_consistent(service, store_settings, shared)
    assert state["obligations"][LEAD]["reported_in_at"] is not None


def test_threads_of_one_service_share_its_cached_case_safely(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    """Commands run on the cached object itself under a per-case lock: threads of one process
    (a gateway's worker pool) must neither lose a command nor see each other's half-done work."""
    case_id = drive(service, clock, actors, "in_handling").case_id
    start = service.case(case_id)["version"]
    street = actors["street"]

    def consult(n: int) -> int:
        return service.hold_consultation(case_id, street, (LEAD, ASSISTING), f"第{n}次会商方案")

    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = sorted(pool.map(consult, range(40)))
    assert versions == list(range(start + 1, start + 41))
    plans = [
        e["payload"]["plan"] for e in service.history(case_id) if e["type"] == "ConsultationHeld"
    ]
    assert sorted(plans) == sorted(f"第{n}次会商方案" for n in range(40))
    assert service.case(case_id)["consultations"] == 40
