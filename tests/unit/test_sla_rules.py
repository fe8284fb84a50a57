"""The SLA clock's rules as pure decisions, and a tick's handling of refusals and faults.

The tick runs on the in-memory store with a list of actions standing in for the `deadlines` view (the
view itself, the runner and two concurrent clocks are tested in
tests/integration/projections/test_sla_clock.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from domain.actors import Actor
from domain.clock import ManualClock
from domain.errors import IllegalState, InvalidInput, NotFound
from domain.service import CaseService
from infra.sla import (
    ActionKind,
    SlaAction,
    SlaClock,
    escalate_at,
    is_skip,
    miss_colour,
    white_at,
)
from tests.unit.builders import ASSISTING, LEAD, whistle_via

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def test_white_at_three_quarters_and_escalation_at_twice_the_limit() -> None:
    due = T0 + timedelta(hours=24)
    assert white_at(T0, due) == T0 + timedelta(hours=18)
    assert escalate_at(T0, due) == T0 + timedelta(hours=48)
    urgent = T0 + timedelta(hours=2)
    assert white_at(T0, urgent) == T0 + timedelta(minutes=90)
    assert escalate_at(T0, urgent) == T0 + timedelta(hours=4)


@pytest.mark.parametrize(
    ("obligation", "misses", "colour"),
    [
        ("response", 1, "yellow"),  # a first missed response deadline
        ("response", 2, "red"),  # the department's second miss on the case
        ("response", 3, "red"),
        ("handling", 1, "red"),  # a missed handling deadline is red at once
        ("handling", 2, "red"),
    ],
)
def test_the_colour_a_miss_earns(obligation: str, misses: int, colour: str) -> None:
    assert miss_colour(obligation, misses) == colour


def test_refusals_meaning_done_or_no_longer_due_are_skips() -> None:
    for code in ("already_recorded", "already_supervised", "already_escalated", "not_overdue"):
        assert is_skip(IllegalState(code, "已处理", "done"))
    assert is_skip(IllegalState("not_due", "无期限", "not due"))
    assert is_skip(IllegalState("illegal_transition", "状态不允许", "closed"))
    assert not is_skip(NotFound("case_not_found", "案件不存在", "no case"))
    assert not is_skip(IllegalState("concurrent_modification", "请重试", "try again"))
    assert not is_skip(InvalidInput("invalid_reason", "理由无效", "bad reason"))


@dataclass
class Listed:
    """A DueSource that answers with a fixed list (the real one is the `deadlines` view)."""

    actions: list[SlaAction]
    asked: list[datetime] = field(default_factory=list)

    def due_actions(self, now: datetime) -> list[SlaAction]:
        self.asked.append(now)
        return list(self.actions)


def stored_types(service: CaseService, case_id: UUID) -> list[str]:
    return [record["type"] for record in service.history(case_id)]


def test_a_tick_acts_skips_what_is_done_and_survives_a_fault(
    service: CaseService,
    clock: ManualClock,
    actors: dict[str, Actor],
    caplog: pytest.LogCaptureFixture,
) -> None:
    case_id = whistle_via(service, actors, clock)
    due = service.case(case_id)["obligations"][LEAD]["response_deadline"]
    clock.set(due + timedelta(minutes=1))
    service.report_in(case_id, Actor.of("department", ASSISTING), "remote")
    action = SlaAction(ActionKind.MISSED, case_id, LEAD, "response", due)
    source = Listed(
        [
            SlaAction(ActionKind.MISSED, uuid4(), LEAD, "response", due),  # no such case: a fault
            action,
            action,  # the same again: already done
            SlaAction(ActionKind.MISSED, case_id, ASSISTING, "response", due),  # answered
            SlaAction(ActionKind.ESCALATE, case_id, LEAD, "response", due),
        ]
    )
    with caplog.at_level(logging.ERROR, logger="infra.sla"):
        report = SlaClock(service, source, clock).tick()
    assert source.asked == [clock.now()]
    assert (report.found, report.failed, report.skipped) == (5, 1, 2)
    assert report.recorded == {"missed": 1, "yellow": 1, "escalated": 1}
    assert "SLA action failed" in caplog.text
    assert stored_types(service, case_id)[-3:] == [
        "DeadlineMissed",
        "SupervisionIssued",
        "EscalatedToDistrict",
    ]
    supervision = service.history(case_id)[-2]
    assert supervision["actor"] == {"role": "system", "id": "sla-clock"}
    assert (supervision["payload"]["colour"], supervision["payload"]["obligation"]) == (
        "yellow",
        "response",
    )


def test_a_second_miss_is_supervised_in_red(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    case_id = whistle_via(service, actors, clock)
    lead = Actor.of("department", LEAD)
    first = service.case(case_id)["obligations"][LEAD]["response_deadline"]
    clock.set(first + timedelta(minutes=1))
    source = Listed([SlaAction(ActionKind.MISSED, case_id, LEAD, "response", first)])
    sla = SlaClock(service, source, clock)
    assert sla.tick().recorded == {"missed": 1, "yellow": 1}
    service.hand_off(case_id, lead, "ghzr", "属规划许可问题")
    service.dispute_hand_off(case_id, Actor.of("department", "ghzr"), "违建查处属城管执法")
    service.determine_responsibility(case_id, actors["centre"], LEAD, "职责清单 CG-001")
    second = service.case(case_id)["obligations"][LEAD]["response_deadline"]
    clock.set(second + timedelta(minutes=1))
    source.actions = [SlaAction(ActionKind.MISSED, case_id, LEAD, "response", second)]
    assert sla.tick().recorded == {"missed": 1, "red": 1}
    handling = service.case(case_id)["handling_deadline"]
    clock.set(handling + timedelta(minutes=1))
    source.actions = [SlaAction(ActionKind.MISSED, case_id, LEAD, "handling", handling)]
    assert sla.tick().recorded == {"missed": 1, "red": 1}
