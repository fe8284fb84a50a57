"""Builders the unit tests share: a case driven to any stage of the closed loop, and checks on refusals.

The standard case is reported by a resident in 建外 (`jianwai`) and whistled under CG-001 (违法建设:
lead 城管执法 `cgzf`, cooperating 规自 `ghzr` and 住建 `zj`; 24 h response, 5 working days), with `zj`
assisting. Every step moves the fake clock on by `STEP`, so event times are distinct and ordered.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate

from domain.actors import Actor, Role
from domain.calendar import WorkingCalendar
from domain.case import Case
from domain.clock import CHINA_TZ, ManualClock
from domain.deadlines import Urgency
from domain.errors import DomainError
from domain.reference import DutyItem, ReferenceData
from domain.service import CaseService
from infra.event_codec import EventEnvelope
from projections.rollup import Deltas

STREET = "jianwai"
ITEM = "CG-001"
LEAD = "cgzf"
ASSISTING = "zj"
RECEIVER = "ghzr"  # where the lead hands the case off to
OUTSIDER = "sthj"  # a department never whistled for the standard case
STEP = timedelta(minutes=10)

E = TypeVar("E", bound=DomainError)


def dept(code: str) -> Actor:
    return Actor(Role.DEPARTMENT, code)


def beijing(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A moment on the wall clocks of Beijing."""
    return datetime(year, month, day, hour, minute, tzinfo=CHINA_TZ)


def report_case(
    actor: Actor, at: datetime, *, street: str = STREET, key: str | None = None, **fields: Any
) -> Case:
    """A freshly reported case (as a resident's 12345 call, unless `fields` say otherwise)."""
    values: dict[str, Any] = {
        "source": "hotline_12345",
        "title": "楼顶违建",
        "description": "3 号楼楼顶正在搭建彩钢房",
        "address": "建国门外大街 1 号院 3 号楼",
    }
    values.update(fields)
    return Case.report(actor, at, case_id=Case.id_for(key), street=street, **values)


@dataclass
class Loop:
    """One case and what it takes to drive it with the right actors and valid arguments."""

    case: Case
    clock: ManualClock
    calendar: WorkingCalendar
    reference: ReferenceData
    actors: dict[str, Actor]
    #: Every event collected so far, oldest first.
    history: list[Any] = field(default_factory=list)

    @property
    def item(self) -> DutyItem:
        return self.reference.duty_items[ITEM]

    @property
    def lead(self) -> Actor:
        """The current lead department (the standard lead before any whistle)."""
        return dept(self.case.lead_department or LEAD)

    def another(self) -> Loop:
        """A second, freshly reported case on the same clock."""
        case = report_case(self.actors["resident"], self.clock.now())
        return Loop(case, self.clock, self.calendar, self.reference, self.actors)

    def tick(self) -> datetime:
        return self.clock.advance(STEP)

    def accept(self) -> None:
        self.case.accept(self.actors["street"], self.tick(), "属实，受理")

    def reject(self) -> None:
        self.case.reject(self.actors["street"], self.tick(), "not_public", "属私人纠纷")

    def whistle(
        self,
        *,
        lead: str = LEAD,
        assisting: tuple[str, ...] = (ASSISTING,),
        item: DutyItem | str | None = ITEM,
        urgency: Urgency = Urgency.NORMAL,
        justification: str | None = None,
    ) -> None:
        duty_item = self.reference.duty_items[item] if isinstance(item, str) else item
        self.case.whistle(
            self.actors["street"],
            self.tick(),
            lead=lead,
            assisting=assisting,
            item=duty_item,
            duty_list_version=1,
            urgency=urgency,
            justification=justification,
            calendar=self.calendar,
        )

    def report_in(self, department: str | None = None, mode: str = "on_site") -> None:
        actor = dept(department) if department else self.lead
        self.case.report_in(actor, self.tick(), mode, "已到场")

    def hand_off(self, to: str = RECEIVER) -> None:
        self.case.hand_off(self.lead, self.tick(), to, "属规划许可问题，非本部门职责")

    def dispute(self) -> None:
        assert self.case.pending_handoff is not None
        disputer = dept(self.case.pending_handoff["to"])
        self.case.dispute_hand_off(disputer, self.tick(), "违建查处属城管执法职责")

    def determine(self, department: str = LEAD) -> None:
        self.case.determine_responsibility(
            self.actors["centre"], self.tick(), department, "依据职责清单 CG-001"
        )

    def consult(self, departments: tuple[str, ...] = (LEAD, ASSISTING)) -> None:
        self.case.hold_consultation(self.actors["street"], self.tick(), departments, "联合拆除")

    def report_handling(self, result: str = "resolved", note: str = "") -> None:
        self.case.report_handling(self.lead, self.tick(), result, note)

    def rework(self) -> None:
        self.case.send_back_for_rework(
            self.actors["street"], self.tick(), "现场仍有残留", self.item, self.calendar
        )

    def close(self) -> None:
        self.case.close(self.actors["street"], self.tick(), "现场核查已拆除")

    def rate_resident(self, satisfaction: str = "satisfied", solved: bool = True) -> None:
        self.case.rate_by_resident(self.actors["resident"], self.tick(), satisfaction, solved)

    def rate_street(self, scores: dict[str, int] | None = None) -> None:
        self.case.rate_by_street(self.actors["street"], self.tick(), scores or {LEAD: 90})

    def reopen(self, actor: Actor | None = None) -> None:
        who = actor or self.actors["street"]
        self.case.reopen(who, self.tick(), "问题复发", self.item, self.calendar)

    def cancel(self) -> None:
        self.case.cancel(self.actors["street"], self.tick(), "来电人撤诉")


#: How to reach each stage from a fresh report; the stage names are those the tests use.
STAGES: dict[str, tuple[str, ...]] = {
    "reported": (),
    "accepted": ("accept",),
    "rejected": ("reject",),
    "cancelled": ("accept", "cancel"),
    "whistled": ("accept", "whistle"),
    "in_handling": ("accept", "whistle", "report_in"),
    "handed_off": ("accept", "whistle", "hand_off"),
    "disputed": ("accept", "whistle", "hand_off", "dispute"),
    "handled": ("accept", "whistle", "report_in", "report_handling"),
    "closed": ("accept", "whistle", "report_in", "report_handling", "close"),
    "rated_unsatisfied": (
        *("accept", "whistle", "report_in", "report_handling", "close"),
        "rate_resident_unsatisfied",
    ),
}


def drive(loop: Loop, stage: str) -> Loop:
    """Takes the loop's fresh case to `stage`, then collects the events so far into its history."""
    for step in STAGES[stage]:
        if step == "rate_resident_unsatisfied":
            loop.rate_resident("unsatisfied", solved=False)
        else:
            getattr(loop, step)()
    loop.history.extend(loop.case.collect_events())
    return loop


def state_of(aggregate: Aggregate) -> dict[str, Any]:
    """A deep copy of everything the aggregate holds, private bookkeeping included."""
    state = {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}
    return copy.deepcopy(state)


def assert_refused(call: Callable[[], object], case: Aggregate, error: type[E], code: str) -> E:
    """`call` raises `error` with `code`, and the case is left exactly as it was: no half-written event."""
    before, version, pending = state_of(case), case.version, len(case.pending_events)
    with pytest.raises(error) as raised:
        call()
    assert raised.value.code == code, raised.value
    assert raised.value.message_zh
    assert raised.value.message_en
    assert case.version == version
    assert len(case.pending_events) == pending
    assert state_of(case) == before
    return raised.value


def replay(events: Sequence[Any]) -> Case:
    """Rebuilds a case from its events, as a repository would."""
    case = events[0].mutate(None)
    for event in events[1:]:
        case = event.mutate(case)
    assert isinstance(case, Case)
    return case


def report_via(service: CaseService, actors: dict[str, Actor], key: str | None = None) -> UUID:
    """The standard case, reported through the application service."""
    return service.report(
        actors["resident"],
        source="hotline_12345",
        street=STREET,
        community="jianwai_c01",
        grid="jianwai_c01_g02",
        title="楼顶违建",
        description="3 号楼楼顶正在搭建彩钢房",
        idempotency_key=key,
    )


def whistle_via(service: CaseService, actors: dict[str, Actor], clock: ManualClock) -> UUID:
    """The standard case, reported, accepted and whistled through the service, a step apart."""
    case_id = report_via(service, actors)
    clock.advance(STEP)
    service.accept(case_id, actors["street"])
    clock.advance(STEP)
    service.whistle(case_id, actors["street"], lead=LEAD, assisting=(ASSISTING,), duty_item=ITEM)
    return case_id


S = TypeVar("S")


def fold_cases(
    envelopes: Sequence[EventEnvelope],
    reported: Callable[[EventEnvelope], S],
    fold: Callable[[S, EventEnvelope, Deltas], bool],
    deltas: Deltas,
) -> dict[str, S]:
    """A roll-up projection's pure fold over a run of envelopes (one batch): states by case id.

    Every case event must be one the fold knows (an unknown one fails the test).
    """
    states: dict[str, S] = {}
    for envelope in envelopes:
        if envelope.aggregate != "case":
            continue
        if envelope.event_type == "CaseReported":
            states[envelope.aggregate_id] = reported(envelope)
        else:
            assert fold(states[envelope.aggregate_id], envelope, deltas), envelope.event_type
    return states
