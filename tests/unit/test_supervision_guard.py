"""The SLA clock's white warning needs a running deadline; people may still supervise on judgement.

Also `CaseService.missed_deadlines`, which the clock reads to supervise a second miss in red.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from domain.actors import SLA_CLOCK, Actor
from domain.case import Case
from domain.clock import ManualClock
from domain.errors import IllegalState, NotFound
from domain.service import CaseService
from tests.unit.builders import ASSISTING, LEAD, RECEIVER, Loop, assert_refused, dept, drive


def white(loop: Loop, department: str, obligation: str, actor: Actor = SLA_CLOCK) -> None:
    loop.case.issue_supervision(actor, loop.tick(), "white", department, obligation, "时限将至")


def test_the_clock_warns_of_a_running_deadline(loop: Loop) -> None:
    case = drive(loop, "whistled").case
    white(loop, LEAD, "response")
    white(loop, LEAD, "handling")
    white(loop, ASSISTING, "response")
    events = [e for e in case.collect_events() if isinstance(e, Case.SupervisionIssued)]
    assert [(e.colour, e.department, e.obligation) for e in events] == [
        ("white", LEAD, "response"),
        ("white", LEAD, "handling"),
        ("white", ASSISTING, "response"),
    ]


@pytest.mark.parametrize(
    ("stage", "department", "obligation"),
    [
        ("in_handling", LEAD, "response"),  # reported in: nothing to warn of
        ("handled", LEAD, "handling"),  # handling reported
        ("whistled", ASSISTING, "handling"),  # handling belongs to the lead only
        ("handed_off", LEAD, "response"),  # no longer active on the case
        ("disputed", RECEIVER, "response"),  # disputing: its clock is paused
    ],
)
def test_the_clock_does_not_warn_of_an_obligation_met_or_paused(
    loop: Loop, stage: str, department: str, obligation: str
) -> None:
    case = drive(loop, stage).case
    assert case.due(department, obligation) is None
    assert_refused(lambda: white(loop, department, obligation), case, IllegalState, "not_due")


def test_people_may_still_warn_and_a_miss_may_still_be_supervised(loop: Loop) -> None:
    """An inspector's judgement is not limited by the clock's rule; yellow follows a recorded miss."""
    case = drive(loop, "whistled").case
    deadline = case.due(LEAD, "response")
    assert deadline is not None
    loop.clock.set(deadline + timedelta(minutes=1))
    case.record_deadline_missed(SLA_CLOCK, loop.clock.now(), LEAD, "response")
    loop.report_in(LEAD)  # answers after the miss was recorded
    white(loop, LEAD, "response", loop.actors["inspector"])
    case.issue_supervision(SLA_CLOCK, loop.tick(), "yellow", LEAD, "response", "超期未报到")
    kinds = [type(e).__name__ for e in case.collect_events()]
    assert kinds == ["DeadlineMissed", "ReportedIn", "SupervisionIssued", "SupervisionIssued"]


def test_missed_deadlines_counts_the_departments_misses_on_the_case(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    case_id = service.report(
        actors["resident"], source="resident", street="jianwai", title="井盖", description="破损"
    )
    service.accept(case_id, actors["street"])
    service.whistle(
        case_id, actors["street"], lead=LEAD, assisting=(ASSISTING,), duty_item="CG-001"
    )
    assert service.missed_deadlines(case_id, LEAD) == 0
    clock.advance(timedelta(hours=25))
    service.record_deadline_missed(case_id, SLA_CLOCK, LEAD, "response")
    service.record_deadline_missed(case_id, SLA_CLOCK, ASSISTING, "response")
    assert service.missed_deadlines(case_id, LEAD) == 1
    # Handed off and determined back: a fresh response deadline, missed again.
    service.hand_off(case_id, dept(LEAD), RECEIVER, "属规划许可问题")
    service.dispute_hand_off(case_id, dept(RECEIVER), "违建查处属城管执法")
    service.determine_responsibility(case_id, actors["centre"], LEAD, "职责清单 CG-001")
    clock.advance(timedelta(hours=25))
    service.record_deadline_missed(case_id, SLA_CLOCK, LEAD, "response")
    assert service.missed_deadlines(case_id, LEAD) == 2
    assert service.missed_deadlines(case_id, ASSISTING) == 1
    assert service.missed_deadlines(case_id, RECEIVER) == 0


def test_missed_deadlines_of_an_unknown_case_is_not_found(service: CaseService) -> None:
    with pytest.raises(NotFound) as refused:
        service.missed_deadlines(uuid4(), LEAD)
    assert refused.value.code == "case_not_found"
