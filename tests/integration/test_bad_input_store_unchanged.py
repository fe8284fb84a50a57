"""A refused command raises its domain error with a stable code and leaves the store exactly as it was.

Each case below is driven to a status, optionally given a first (legal) command, and then sent a command
that breaks one rule. The store is compared row for row, byte for byte, before and after; a new service
must read the case as the old one did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.actors import Actor
from domain.case_rules import Status
from domain.clock import ManualClock
from domain.errors import DomainError, IllegalState, InvalidInput, NotFound, WrongActor
from domain.service import CaseService
from infra.settings import Settings
from infra.store import open_service
from tests.integration.builders import drive, fingerprint, report_case
from tests.unit.builders import ASSISTING, ITEM, LEAD, OUTSIDER, RECEIVER, dept


@dataclass(frozen=True)
class Ctx:
    service: CaseService
    clock: ManualClock
    actors: dict[str, Actor]
    case_id: UUID

    def whistle(self, **changes: Any) -> int:
        """The builders' whistle (lead cgzf, zj assisting, CG-001) with some arguments changed."""
        args: dict[str, Any] = {"lead": LEAD, "assisting": (ASSISTING,), "duty_item": ITEM}
        args.update(changes)
        actor = args.pop("actor", self.actors["street"])
        return self.service.whistle(self.case_id, actor, **args)

    def report(self, **changes: Any) -> UUID:
        return report_case(self.service, self.actors, **changes)


Command = Callable[[Ctx], object]


@dataclass(frozen=True)
class Bad:
    name: str
    stage: str
    command: Command
    error: type[DomainError]
    code: str
    before: Command | None = None


def _miss_lead_response(c: Ctx) -> int:
    c.clock.advance(timedelta(hours=25))
    return c.service.record_deadline_missed(c.case_id, c.actors["system"], LEAD, "response")


def _rate_satisfied(c: Ctx) -> int:
    return c.service.rate_by_resident(c.case_id, c.actors["resident"], "satisfied", True)


S = Status
BAD = [
    # unknown reference data
    Bad("unknown lead department", S.ACCEPTED, lambda c: c.whistle(lead="nosuch"),
        InvalidInput, "unknown_department"),
    Bad("unknown assisting department", S.ACCEPTED, lambda c: c.whistle(assisting=("nosuch",)),
        InvalidInput, "unknown_department"),
    Bad("hand off to an unknown department", S.IN_HANDLING,
        lambda c: c.service.hand_off(c.case_id, dept(LEAD), "nosuch", "不属本部门职责"),
        InvalidInput, "unknown_department"),
    Bad("consult an unknown department", S.IN_HANDLING,
        lambda c: c.service.hold_consultation(c.case_id, c.actors["street"], (LEAD, "nosuch"), "会商"),
        InvalidInput, "unknown_department"),
    Bad("unknown duty item", S.ACCEPTED, lambda c: c.whistle(duty_item="CG-999"),
        InvalidInput, "unknown_duty_item"),
    Bad("report suggesting an unknown duty item", S.REPORTED,
        lambda c: c.report(suggested_item="CG-999"), InvalidInput, "unknown_duty_item"),
    Bad("unknown street", S.REPORTED,
        lambda c: c.report(street="nowhere", community=None, grid=None),
        InvalidInput, "unknown_street"),
    Bad("unknown community", S.REPORTED, lambda c: c.report(community="jianwai_c99", grid=None),
        InvalidInput, "unknown_community"),
    Bad("community of another street", S.REPORTED,
        lambda c: c.report(community="hujialou_c01", grid=None),
        InvalidInput, "community_not_in_street"),
    Bad("unknown grid", S.REPORTED, lambda c: c.report(grid="jianwai_c01_g99"),
        InvalidInput, "unknown_grid"),
    Bad("grid without its community", S.REPORTED, lambda c: c.report(community=None),
        InvalidInput, "unknown_grid"),
    Bad("unknown case", S.REPORTED, lambda c: c.service.accept(uuid4(), c.actors["street"]),
        NotFound, "case_not_found"),
    # the admission rule and other input
    Bad("ordinary matter outside the duty list", S.ACCEPTED, lambda c: c.whistle(duty_item=None),
        InvalidInput, "outside_duty_list"),
    Bad("lead not named by the duty item", S.ACCEPTED, lambda c: c.whistle(lead=OUTSIDER),
        InvalidInput, "department_not_responsible"),
    Bad("unknown urgency", S.ACCEPTED, lambda c: c.whistle(urgency="asap"),
        InvalidInput, "invalid_urgency"),
    # the wrong actor
    Bad("resident whistling", S.ACCEPTED, lambda c: c.whistle(actor=c.actors["resident"]),
        WrongActor, "street_only"),
    Bad("other street accepting", S.REPORTED,
        lambda c: c.service.accept(c.case_id, c.actors["other_street"]),
        WrongActor, "other_street"),
    Bad("department accepting", S.REPORTED, lambda c: c.service.accept(c.case_id, dept(LEAD)),
        WrongActor, "street_only"),
    Bad("department reporting a case", S.REPORTED, lambda c: c.report(actor=dept(LEAD)),
        WrongActor, "actor_not_allowed"),
    Bad("department not whistled reporting in", S.WHISTLED,
        lambda c: c.service.report_in(c.case_id, dept(OUTSIDER), "on_site"),
        IllegalState, "not_whistled"),
    Bad("street reporting in", S.WHISTLED,
        lambda c: c.service.report_in(c.case_id, c.actors["street"], "on_site"),
        WrongActor, "department_only"),
    Bad("assisting department reporting handling", S.IN_HANDLING,
        lambda c: c.service.report_handling(c.case_id, dept(ASSISTING), "resolved"),
        WrongActor, "not_lead_department"),
    Bad("other street rating departments", S.CLOSED,
        lambda c: c.service.rate_by_street(c.case_id, c.actors["other_street"], {LEAD: 90}),
        WrongActor, "own_street_only"),
    Bad("street rating satisfaction", S.CLOSED,
        lambda c: c.service.rate_by_resident(c.case_id, c.actors["street"], "satisfied", True),
        WrongActor, "resident_only"),
    Bad("resident recording a missed deadline", S.WHISTLED,
        lambda c: c.service.record_deadline_missed(c.case_id, c.actors["resident"], LEAD, "response"),
        WrongActor, "actor_not_allowed"),
    Bad("grid worker settling responsibility", S.IN_HANDLING,
        lambda c: c.service.determine_responsibility(c.case_id, c.actors["grid"], LEAD, "依据清单"),
        WrongActor, "command_centre_only"),
    # out of order
    Bad("whistle before accepting", S.REPORTED, lambda c: c.whistle(),
        IllegalState, "illegal_transition"),
    Bad("report in before the whistle", S.ACCEPTED,
        lambda c: c.service.report_in(c.case_id, dept(LEAD), "on_site"),
        IllegalState, "illegal_transition"),
    Bad("close before handling", S.IN_HANDLING,
        lambda c: c.service.close_case(c.case_id, c.actors["street"]),
        IllegalState, "handling_not_reported"),
    Bad("rework before handling", S.IN_HANDLING,
        lambda c: c.service.send_back_for_rework(c.case_id, c.actors["street"], "现场未整改"),
        IllegalState, "illegal_transition"),
    Bad("resident rating before close", S.HANDLED, _rate_satisfied,
        IllegalState, "case_not_closed"),
    Bad("street rating before close", S.HANDLED,
        lambda c: c.service.rate_by_street(c.case_id, c.actors["street"], {LEAD: 90}),
        IllegalState, "case_not_closed"),
    Bad("close twice", S.CLOSED, lambda c: c.service.close_case(c.case_id, c.actors["street"]),
        IllegalState, "illegal_transition"),
    Bad("close a cancelled case", "cancelled",
        lambda c: c.service.close_case(c.case_id, c.actors["street"]),
        IllegalState, "illegal_transition"),
    Bad("close a rejected case", "rejected",
        lambda c: c.service.close_case(c.case_id, c.actors["street"]),
        IllegalState, "illegal_transition"),
    Bad("reopen before close", S.HANDLED,
        lambda c: c.service.reopen(c.case_id, c.actors["street"], "群众仍有反映"),
        IllegalState, "illegal_transition"),
    Bad("dispute without a hand-off", S.IN_HANDLING,
        lambda c: c.service.dispute_hand_off(c.case_id, dept(RECEIVER), "不属本部门"),
        IllegalState, "no_hand_off_to_dispute"),
    Bad("deadline missed before it is due", S.WHISTLED,
        lambda c: c.service.record_deadline_missed(c.case_id, c.actors["system"], LEAD, "response"),
        IllegalState, "not_overdue"),
    # duplicates
    Bad("accept twice", S.ACCEPTED, lambda c: c.service.accept(c.case_id, c.actors["street"]),
        IllegalState, "illegal_transition"),
    Bad("report in twice", S.IN_HANDLING,
        lambda c: c.service.report_in(c.case_id, dept(LEAD), "remote"),
        IllegalState, "already_reported_in"),
    Bad("resident rates twice", S.CLOSED,
        lambda c: c.service.rate_by_resident(c.case_id, c.actors["resident"], "unsatisfied", False),
        IllegalState, "already_rated", before=_rate_satisfied),
    Bad("street rates twice", S.CLOSED,
        lambda c: c.service.rate_by_street(c.case_id, c.actors["street"], {LEAD: 60}),
        IllegalState, "already_rated",
        before=lambda c: c.service.rate_by_street(c.case_id, c.actors["street"], {LEAD: 90})),
    Bad("deadline missed twice", S.WHISTLED,
        lambda c: c.service.record_deadline_missed(c.case_id, c.actors["centre"], LEAD, "response"),
        IllegalState, "already_recorded", before=_miss_lead_response),
    Bad("same supervision twice", S.WHISTLED,
        lambda c: c.service.issue_supervision(
            c.case_id, c.actors["inspector"], "white", LEAD, "再次预警", "response"),
        IllegalState, "already_supervised",
        before=lambda c: c.service.issue_supervision(
            c.case_id, c.actors["system"], "white", LEAD, "即将超期", "response")),
    Bad("escalate twice", S.WHISTLED,
        lambda c: c.service.escalate_to_district(c.case_id, c.actors["centre"], ASSISTING, "仍未报到"),
        IllegalState, "already_escalated",
        before=lambda c: c.service.escalate_to_district(c.case_id, c.actors["street"], ASSISTING, "未报到")),
    Bad("satisfied resident reopening", S.CLOSED,
        lambda c: c.service.reopen(c.case_id, c.actors["resident"], "想再看看"),
        IllegalState, "reopen_needs_unsatisfied_rating", before=_rate_satisfied),
]  # fmt: skip


def _assert_refused_without_trace(
    ctx: Ctx, settings: Settings, command: Command, error: type[DomainError], code: str
) -> None:
    service, case_id = ctx.service, ctx.case_id
    rows, last = fingerprint(service), service.recorder.max_notification_id()
    state, history = service.case(case_id), service.history(case_id)
    ctx.clock.advance(timedelta(minutes=1))

    with pytest.raises(DomainError) as refused:
        command(ctx)

    assert type(refused.value) is error
    assert refused.value.code == code
    assert service.recorder.max_notification_id() == last
    assert fingerprint(service) == rows
    assert service.case(case_id) == state
    fresh = open_service(settings, ctx.clock)
    try:
        assert fresh.case(case_id) == state
        assert fresh.history(case_id) == history
    finally:
        fresh.close()


@pytest.mark.parametrize("bad", BAD, ids=[bad.name.replace(" ", "-") for bad in BAD])
def test_refused_command_leaves_the_store_unchanged(
    bad: Bad,
    service: CaseService,
    store_settings: Settings,
    clock: ManualClock,
    actors: dict[str, Actor],
) -> None:
    ctx = Ctx(service, clock, actors, drive(service, clock, actors, bad.stage).case_id)
    if bad.before is not None:
        bad.before(ctx)
    _assert_refused_without_trace(ctx, store_settings, bad.command, bad.error, bad.code)


def test_commands_after_refusals_continue_the_same_versions(
    service: CaseService, store_settings: Settings, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    case_id = drive(service, clock, actors, Status.IN_HANDLING).case_id
    street, lead = actors["street"], dept(LEAD)
    refusals: list[Callable[[], int]] = [
        lambda: service.close_case(case_id, street),
        lambda: service.report_in(case_id, lead, "on_site"),
        lambda: service.report_handling(case_id, dept(ASSISTING), "resolved"),
    ]
    for refused in refusals:
        with pytest.raises(DomainError):
            refused()

    assert service.report_handling(case_id, lead, "resolved") == 5
    assert service.close_case(case_id, street) == 6
    fresh = open_service(store_settings, clock)
    try:
        assert [r["version"] for r in fresh.history(case_id)] == [1, 2, 3, 4, 5, 6]
        assert fresh.case(case_id)["status"] == Status.CLOSED
    finally:
        fresh.close()


def test_a_case_is_not_a_duplicate_of_itself(
    service: CaseService, store_settings: Settings, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    ctx = Ctx(service, clock, actors, drive(service, clock, actors, Status.ACCEPTED).case_id)
    with pytest.raises(InvalidInput):
        service.reject(ctx.case_id, actors["street"], "duplicate", duplicate_of=ctx.case_id)
    assert service.case(ctx.case_id)["status"] == Status.ACCEPTED
