"""The SLA clock end to end: two clocks, each with its own CaseService, on one store, at once.

The real runner folds WL_EVENTS into the `deadlines` view; a ManualClock is moved to each moment the
rules name and both clocks tick concurrently (threads), twice: the second round finds the view stale
(it has not seen the first round's events yet) and must be refused by the aggregates, not repeat
anything. After each moment the stored events are counted by type: every warning, miss, supervision
and escalation exactly once, and the view shows them all done.

Case A never reports in: white at 75 % of its response limit, miss + yellow at the limit, escalation
at twice the limit, then white and miss + red on its handling deadline. Case B misses its response
deadline, is handed off, disputed and determined back: its second response miss is red. Case C
reports in just before its white warning while the view still shows the deadline: no warning.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from nats.aio.client import Client
from sqlalchemy import Engine

from domain.actors import Actor
from domain.case import Case
from domain.clock import ManualClock
from domain.service import CaseService
from infra.settings import Settings
from infra.sla import SlaClock, TickReport
from infra.store import open_service
from projections.deadlines import Deadlines, ViewsDueSource
from projections.runner import ProjectorRunner, RunnerOptions
from projections.views_db import create_views_tables, open_views_engine
from tests.conftest import START
from tests.integration.builders import notifications, report_case
from tests.integration.projections.support import RelayLike, eventually, reached, running
from tests.stores import PG_URL
from tests.unit.builders import ITEM, LEAD, RECEIVER, dept

pytestmark = pytest.mark.asyncio

OPTIONS = RunnerOptions(batch=50, fetch_timeout=0.1)
MINUTE = timedelta(minutes=1)
Tally = Counter[tuple[str, str]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def services(store_settings: Settings, clock: ManualClock) -> Iterator[list[CaseService]]:
    """Two CaseServices on one fresh store (SQLite or PostgreSQL), as two SLA processes would be."""
    first = open_service(store_settings, clock)
    first.publish_duty_list()
    second = open_service(store_settings, clock)
    yield [first, second]
    first.close()
    second.close()


@pytest.fixture
def views(store_settings: Settings, tmp_path: Path) -> Iterator[Engine]:
    """The read-model DB of the store's kind: a SQLite file, or the store's PostgreSQL schema."""
    if store_settings.is_sqlite:
        settings = Settings(var_dir=tmp_path / "views")
    else:
        url = f"{PG_URL}?options=-csearch_path%3D{store_settings.database_schema}"
        settings = Settings(views_database_url=url, var_dir=tmp_path / "views")
    engine = open_views_engine(settings)
    create_views_tables(engine)
    yield engine
    engine.dispose()


def tally(service: CaseService, labels: dict[UUID, str]) -> Tally:
    """The SLA clock's kind of events in the store, by case: (case, 'white:response'), …"""
    found: Tally = Counter()
    for notification in notifications(service):
        event = service.mapper.to_domain_event(notification)
        label = labels.get(UUID(str(notification.originator_id)))
        if label is None:
            continue
        if isinstance(event, Case.DeadlineMissed):
            found[(label, f"missed:{event.obligation}")] += 1
        elif isinstance(event, Case.SupervisionIssued):
            found[(label, f"{event.colour}:{event.obligation}")] += 1
        elif isinstance(event, Case.EscalatedToDistrict):
            found[(label, "escalated")] += 1
    return found


class Scene:
    """The store, the view and two clocks; `moment` moves time and lets both clocks act."""

    def __init__(
        self,
        services: list[CaseService],
        views: Engine,
        nc: Client,
        clock: ManualClock,
        labels: dict[UUID, str],
    ) -> None:
        self.services, self.views, self.nc, self.clock = services, views, nc, clock
        self.labels = labels
        self.relay = RelayLike(services[0])
        self.source = ViewsDueSource(views)
        self.clocks = [SlaClock(s, ViewsDueSource(views), clock) for s in services]
        self.expected: Tally = Counter()
        self.last = 0

    async def sync(self) -> None:
        """Publishes new events as the relay would and waits until the view has them all."""
        envelopes = await self.relay.publish_new(self.nc.jetstream())
        if envelopes:
            self.last = envelopes[-1].notification_id
        await eventually(reached(self.views, Deadlines.name, self.last), "deadlines to catch up")

    async def tick_both(self) -> list[TickReport]:
        reports = await asyncio.gather(*(asyncio.to_thread(c.tick) for c in self.clocks))
        assert [r.failed for r in reports] == [0, 0], reports
        return list(reports)

    async def moment(
        self, at: datetime, *new: tuple[str, str], before: Callable[[], object] | None = None
    ) -> None:
        self.clock.set(at)
        await self.sync()
        if before is not None:
            before()  # moves a case on without the view hearing of it yet
        first = await self.tick_both()
        again = await self.tick_both()  # the view is stale now: the aggregates must refuse
        assert [r.recorded for r in again] == [{}, {}], again
        assert [r.skipped for r in again] == [r.found for r in again]
        await self.sync()
        self.expected.update(new)
        assert tally(self.services[0], self.labels) == self.expected, at
        assert sum(sum(r.recorded.values()) for r in first) == len(new)
        assert self.source.due_actions(at) == []  # the view shows every action done


async def test_two_clocks_warn_miss_supervise_and_escalate_exactly_once(
    services: list[CaseService],
    views: Engine,
    nc: Client,
    clock: ManualClock,
    actors: dict[str, Actor],
) -> None:
    service, street = services[0], actors["street"]
    labels = {report_case(service, actors, title=f"案件 {x}"): x for x in "ABC"}
    ids = {label: case_id for case_id, label in labels.items()}
    for case_id in labels:
        service.accept(case_id, street)
    clock.advance(MINUTE)
    for case_id in labels:  # all whistled at the same moment T0
        service.whistle(case_id, street, lead=LEAD, duty_item=ITEM)
    state = service.case(ids["A"])
    t0 = state["obligations"][LEAD]["whistled_at"]
    response, handling = state["obligations"][LEAD]["response_deadline"], state["handling_deadline"]
    limit = response - t0
    assert limit == timedelta(hours=24)

    runner = ProjectorRunner(nc, views, [Deadlines()], OPTIONS)
    async with running(runner):
        scene = Scene(services, views, nc, clock, labels)
        await scene.moment(t0 + limit * 0.75 - MINUTE)  # not yet
        await scene.moment(
            t0 + limit * 0.75 + MINUTE,
            ("A", "white:response"),
            ("B", "white:response"),
            before=lambda: services[1].report_in(ids["C"], dept(LEAD), "on_site"),
        )
        await scene.moment(
            response + MINUTE,
            ("A", "missed:response"),
            ("A", "yellow:response"),
            ("B", "missed:response"),
            ("B", "yellow:response"),
        )
        # B is handed off, the receiver disputes, the command centre gives it back: a new deadline.
        b, centre = ids["B"], actors["centre"]
        moves: list[Callable[[], int]] = [
            lambda: service.hand_off(b, dept(LEAD), RECEIVER, "属规划许可问题"),
            lambda: service.dispute_hand_off(b, dept(RECEIVER), "违建查处属城管执法"),
            lambda: service.determine_responsibility(b, centre, LEAD, "职责清单 CG-001"),
        ]
        for move in moves:
            clock.advance(MINUTE)
            move()
        determined = clock.now()
        second = service.case(b)["obligations"][LEAD]["response_deadline"]
        assert second == determined + limit
        await scene.moment(determined + limit * 0.75 + MINUTE, ("B", "white:response"))
        await scene.moment(t0 + 2 * limit + MINUTE, ("A", "escalated"))
        await scene.moment(second + MINUTE, ("B", "missed:response"), ("B", "red:response"))
        await scene.moment(determined + 2 * limit + MINUTE, ("B", "escalated"))
        handling_white = t0 + (handling - t0) * 0.75 + MINUTE
        assert handling_white > determined + 2 * limit + MINUTE
        await scene.moment(handling_white, *((x, "white:handling") for x in "ABC"))
        await scene.moment(
            handling + MINUTE,
            *((x, kind) for x in "ABC" for kind in ("missed:handling", "red:handling")),
        )
    by_case = Counter(
        label for (label, _kind), n in tally(service, labels).items() for _ in range(n)
    )
    assert by_case == {"A": 7, "B": 10, "C": 3}  # C answered in time: only its handling deadline
