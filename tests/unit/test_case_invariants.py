"""The rules the Case enforces beyond its status: who may act, on what, and how often."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from domain.actors import Actor
from domain.case import Case
from domain.case_rules import Status
from domain.errors import DomainError, IllegalState, InvalidInput, WrongActor
from tests.unit.builders import (
    ASSISTING,
    LEAD,
    OUTSIDER,
    RECEIVER,
    STEP,
    Loop,
    assert_refused,
    dept,
    drive,
    report_case,
)

Command = Callable[[Loop], object]


def _score(score: object) -> Command:
    """The street scoring the lead with `score`, which the type hints would not let through."""
    return lambda lp: lp.rate_street({LEAD: score})  # type: ignore[dict-item]


def _wrong(stage: str, command: Command, error: type[DomainError], code: str, name: str) -> object:
    return pytest.param(stage, command, error, code, id=name)


#: (stage, command with a wrong actor or wrong input, error, code): each refused, the case untouched.
REFUSALS = [
    # only whistled departments report in
    _wrong(
        "whistled",
        lambda lp: lp.case.report_in(dept(OUTSIDER), lp.tick(), "on_site"),
        IllegalState,
        "not_whistled",
        "outsider-reports-in",
    ),
    _wrong(
        "handed_off",
        lambda lp: lp.case.report_in(dept(LEAD), lp.tick(), "on_site"),
        IllegalState,
        "not_whistled",
        "department-that-handed-off-reports-in",
    ),
    _wrong(
        "whistled",
        lambda lp: lp.case.report_in(lp.actors["street"], lp.tick(), "on_site"),
        WrongActor,
        "department_only",
        "street-reports-in",
    ),
    _wrong(
        "whistled",
        lambda lp: lp.case.report_in(dept(LEAD), lp.tick(), "by_pigeon"),
        InvalidInput,
        "invalid_mode",
        "unknown-report-in-mode",
    ),
    # only the lead reports handling and hands off
    _wrong(
        "in_handling",
        lambda lp: lp.case.report_handling(dept(ASSISTING), lp.tick(), "resolved"),
        WrongActor,
        "not_lead_department",
        "assisting-reports-handling",
    ),
    _wrong(
        "in_handling",
        lambda lp: lp.case.report_handling(lp.actors["street"], lp.tick(), "resolved"),
        WrongActor,
        "department_only",
        "street-reports-handling",
    ),
    _wrong(
        "in_handling",
        lambda lp: lp.case.report_handling(dept(LEAD), lp.tick(), "unresolvable"),
        InvalidInput,
        "invalid_note",
        "unresolvable-without-reason",
    ),
    _wrong(
        "in_handling",
        lambda lp: lp.case.hand_off(dept(ASSISTING), lp.tick(), RECEIVER, "非本部门职责"),
        WrongActor,
        "not_lead_department",
        "assisting-hands-off",
    ),
    _wrong(
        "handed_off",
        lambda lp: lp.case.hand_off(dept(LEAD), lp.tick(), OUTSIDER, "非本部门职责"),
        WrongActor,
        "not_lead_department",
        "former-lead-hands-off-again",
    ),
    _wrong(
        "whistled",
        lambda lp: lp.case.hand_off(dept(LEAD), lp.tick(), LEAD, "非本部门职责"),
        InvalidInput,
        "hand_off_to_self",
        "hand-off-to-self",
    ),
    _wrong(
        "whistled",
        lambda lp: lp.case.hand_off(dept(LEAD), lp.tick(), ASSISTING, "非本部门职责"),
        IllegalState,
        "already_involved",
        "hand-off-to-a-department-on-the-case",
    ),
    _wrong(
        "whistled",
        lambda lp: lp.case.hand_off(dept(LEAD), lp.tick(), RECEIVER, " "),
        InvalidInput,
        "invalid_reason",
        "hand-off-without-reason",
    ),
    _wrong(
        "handed_off",
        lambda lp: lp.case.dispute_hand_off(dept(ASSISTING), lp.tick(), "不属本部门"),
        IllegalState,
        "no_hand_off_to_dispute",
        "dispute-by-a-department-not-handed-to",
    ),
    _wrong(
        "disputed",
        lambda lp: lp.case.determine_responsibility(lp.actors["street"], lp.tick(), LEAD, "清单"),
        WrongActor,
        "command_centre_only",
        "street-determines-responsibility",
    ),
    _wrong(
        "whistled",
        lambda lp: lp.case.hold_consultation(lp.actors["street"], lp.tick(), (LEAD, LEAD), "x"),
        InvalidInput,
        "consultation_needs_two",
        "consultation-of-one",
    ),
    # closing needs a handling report
    _wrong(
        "in_handling",
        lambda lp: lp.close(),
        IllegalState,
        "handling_not_reported",
        "close-without-handling",
    ),
    # rating needs a closed case, once per round per rater
    _wrong(
        "handled",
        lambda lp: lp.rate_resident(),
        IllegalState,
        "case_not_closed",
        "resident-rates-open-case",
    ),
    _wrong(
        "closed",
        lambda lp: lp.rate_resident("very_happy"),
        InvalidInput,
        "invalid_satisfaction",
        "unknown-satisfaction",
    ),
    _wrong(
        "rated_unsatisfied",
        lambda lp: lp.rate_resident("satisfied"),
        IllegalState,
        "already_rated",
        "resident-rates-twice",
    ),
    # street scores: departments on the case, integers 0–100
    _wrong(
        "closed",
        lambda lp: lp.rate_street({OUTSIDER: 80}),
        InvalidInput,
        "score_unknown_department",
        "score-for-department-not-on-case",
    ),
    _wrong(
        "closed",
        lambda lp: lp.case.rate_by_street(lp.actors["street"], lp.tick(), {}),
        InvalidInput,
        "score_unknown_department",
        "no-scores",
    ),
    *(
        _wrong(
            "closed",
            _score(score),
            InvalidInput,
            "score_out_of_range",
            f"score-{score!r}",
        )
        for score in (-1, 101, 59.5, True, "90")
    ),
    # wrong actors: role, other street, other department
    _wrong(
        "reported",
        lambda lp: lp.case.accept(dept(LEAD), lp.tick()),
        WrongActor,
        "street_only",
        "department-accepts",
    ),
    _wrong(
        "reported",
        lambda lp: lp.case.accept(lp.actors["resident"], lp.tick()),
        WrongActor,
        "street_only",
        "resident-accepts",
    ),
    _wrong(
        "reported",
        lambda lp: lp.case.accept(lp.actors["other_street"], lp.tick()),
        WrongActor,
        "other_street",
        "other-street-accepts",
    ),
    _wrong(
        "reported",
        lambda lp: lp.case.reject(lp.actors["other_street"], lp.tick(), "other"),
        WrongActor,
        "other_street",
        "other-street-rejects",
    ),
    _wrong(
        "handled",
        lambda lp: lp.case.close(lp.actors["other_street"], lp.tick()),
        WrongActor,
        "other_street",
        "other-street-closes",
    ),
    _wrong(
        "handled",
        lambda lp: lp.case.close(lp.actors["inspector"], lp.tick()),
        WrongActor,
        "street_only",
        "inspector-closes",
    ),
    _wrong(
        "in_handling",
        lambda lp: lp.case.cancel(lp.actors["other_street"], lp.tick(), "撤销"),
        WrongActor,
        "other_street",
        "other-street-cancels",
    ),
    _wrong(
        "closed",
        lambda lp: lp.case.rate_by_resident(lp.actors["street"], lp.tick(), "satisfied", True),
        WrongActor,
        "resident_only",
        "street-rates-satisfaction",
    ),
    _wrong(
        "closed",
        lambda lp: lp.case.rate_by_street(lp.actors["other_street"], lp.tick(), {LEAD: 90}),
        WrongActor,
        "own_street_only",
        "other-street-scores",
    ),
    _wrong(
        "closed",
        lambda lp: lp.case.rate_by_street(lp.actors["centre"], lp.tick(), {LEAD: 90}),
        WrongActor,
        "own_street_only",
        "command-centre-scores",
    ),
    _wrong(
        "closed", lambda lp: lp.reopen(dept(LEAD)), WrongActor, "street_only", "department-reopens"
    ),
    _wrong(
        "closed",
        lambda lp: lp.reopen(lp.actors["other_street"]),
        WrongActor,
        "other_street",
        "other-street-reopens",
    ),
    _wrong(
        "whistled",
        lambda lp: lp.case.record_deadline_missed(
            lp.actors["street"], lp.tick() + timedelta(days=9), LEAD, "response"
        ),
        WrongActor,
        "actor_not_allowed",
        "street-records-deadline-missed",
    ),
    _wrong(
        "whistled",
        lambda lp: lp.case.issue_supervision(dept(LEAD), lp.tick(), "red", LEAD, None, "督办"),
        WrongActor,
        "actor_not_allowed",
        "department-supervises",
    ),
    _wrong(
        "whistled",
        lambda lp: lp.case.escalate_to_district(dept(LEAD), lp.tick(), ASSISTING, "未报到"),
        WrongActor,
        "actor_not_allowed",
        "department-escalates",
    ),
    _wrong(
        "whistled",
        lambda lp: lp.case.escalate_to_district(
            lp.actors["other_street"], lp.tick(), ASSISTING, "未报到"
        ),
        WrongActor,
        "other_street",
        "other-street-escalates",
    ),
    # supervision and escalation name a department on the case
    _wrong(
        "whistled",
        lambda lp: lp.case.issue_supervision(
            lp.actors["centre"], lp.tick(), "red", OUTSIDER, None, "督办"
        ),
        InvalidInput,
        "department_not_on_case",
        "supervise-department-not-on-case",
    ),
    _wrong(
        "whistled",
        lambda lp: lp.case.issue_supervision(
            lp.actors["centre"], lp.tick(), "purple", LEAD, None, "督办"
        ),
        InvalidInput,
        "invalid_colour",
        "supervise-in-purple",
    ),
    _wrong(
        "whistled",
        lambda lp: lp.case.escalate_to_district(lp.actors["system"], lp.tick(), OUTSIDER, "未报到"),
        InvalidInput,
        "department_not_on_case",
        "escalate-department-not-on-case",
    ),
    _wrong(
        "handed_off",
        lambda lp: lp.case.escalate_to_district(lp.actors["system"], lp.tick(), LEAD, "未报到"),
        InvalidInput,
        "department_not_on_case",
        "escalate-department-that-handed-off",
    ),
    # escalation only for a department that has not reported in
    _wrong(
        "in_handling",
        lambda lp: lp.case.escalate_to_district(lp.actors["system"], lp.tick(), LEAD, "未报到"),
        IllegalState,
        "already_reported_in",
        "escalate-reported-in",
    ),
    # text a store and a screen can hold: no NUL or other control characters, no lone surrogates
    *(
        _wrong(stage, command, InvalidInput, "invalid_characters", name)
        for stage, command, name in [
            (
                "reported",
                lambda lp: lp.case.accept(lp.actors["street"], lp.tick(), "ok\x00"),
                "nul-in-note",
            ),
            (
                "whistled",
                lambda lp: lp.case.report_in(dept(LEAD), lp.tick(), "on_site", "\x1b[2J"),
                "escape-in-note",
            ),
            (
                "closed",
                lambda lp: lp.case.rate_by_resident(
                    lp.actors["resident"], lp.tick(), "satisfied", True, "\ud800"
                ),
                "surrogate-in-comment",
            ),
        ]
    ),
    # reopen by a resident only after an unsatisfied rating
    _wrong(
        "closed",
        lambda lp: lp.reopen(lp.actors["resident"]),
        IllegalState,
        "reopen_needs_unsatisfied_rating",
        "resident-reopens-unrated",
    ),
]


@pytest.mark.parametrize(("stage", "command", "error", "code"), REFUSALS)
def test_refused(
    loop: Loop, stage: str, command: Command, error: type[DomainError], code: str
) -> None:
    drive(loop, stage)
    assert_refused(lambda: command(loop), loop.case, error, code)


def test_only_reporter_roles_report(actors: dict[str, Actor], loop: Loop) -> None:
    for key in ("cgzf", "inspector", "system"):
        with pytest.raises(WrongActor) as raised:
            report_case(actors[key], loop.clock.now())
        assert raised.value.code == "actor_not_allowed"
    for key in ("resident", "grid", "street", "centre"):
        report_case(actors[key], loop.clock.now())


def test_a_street_reports_only_in_its_own_area(actors: dict[str, Actor], loop: Loop) -> None:
    with pytest.raises(WrongActor) as raised:
        report_case(actors["other_street"], loop.clock.now())
    assert raised.value.code == "other_street"


@pytest.mark.parametrize(
    "fields", [{"title": "井盖\x00"}, {"address": "\x07"}, {"contact": {"name": "\ud83d"}}]
)
def test_reports_hold_plain_text_only(
    actors: dict[str, Actor], loop: Loop, fields: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInput) as raised:
        report_case(actors["resident"], loop.clock.now(), **fields)
    assert raised.value.code == "invalid_characters"
    report_case(actors["resident"], loop.clock.now(), title="井盖\t缺失\n（两处）")


@pytest.mark.parametrize(
    "contact",
    [
        "13800000000",
        {"phone": 13800000000},
        {"name": "张三", "id_card": "110101199001011234"},
        {"name": "张" * 101},
    ],
)
def test_contact_data_is_a_few_short_strings(
    actors: dict[str, Actor], loop: Loop, contact: object
) -> None:
    with pytest.raises(InvalidInput) as raised:
        report_case(actors["resident"], loop.clock.now(), contact=contact)
    assert raised.value.code == "invalid_contact"
    case = report_case(actors["resident"], loop.clock.now(), contact={"name": "张三", "phone": "1"})
    assert case.contact == {"name": "张三", "phone": "1"}


def test_command_centre_acts_for_any_street(loop: Loop) -> None:
    centre = loop.actors["centre"]
    loop.case.accept(centre, loop.tick())
    loop.case.cancel(centre, loop.tick(), "重复来电")
    assert loop.case.status == Status.CANCELLED


def test_assisting_department_reports_in_while_responsibility_is_disputed(loop: Loop) -> None:
    drive(loop, "disputed").report_in(ASSISTING)
    assert loop.case.status == Status.DISPUTED


def test_a_reworked_case_needs_a_new_handling_report_before_closing(loop: Loop) -> None:
    drive(loop, "handled").rework()
    assert_refused(loop.close, loop.case, IllegalState, "handling_not_reported")
    loop.report_handling()
    loop.close()
    assert loop.case.status == Status.CLOSED


def test_street_scores_accept_the_bounds_and_departments_that_handed_off(loop: Loop) -> None:
    """A department that handed the case off still worked it, so the street may score it."""
    drive(loop, "handed_off").report_in()
    loop.report_handling()
    loop.close()
    loop.rate_street({LEAD: 0, RECEIVER: 100})
    assert loop.case.street_scores == {LEAD: 0, RECEIVER: 100}


def test_each_rater_rates_once_per_round(loop: Loop) -> None:
    drive(loop, "closed").rate_resident("unsatisfied", solved=False)
    loop.rate_street()
    assert_refused(loop.rate_street, loop.case, IllegalState, "already_rated")
    assert_refused(loop.rate_resident, loop.case, IllegalState, "already_rated")
    loop.reopen(loop.actors["resident"])
    loop.report_handling()
    loop.close()
    loop.rate_resident("satisfied")
    loop.rate_street()
    assert loop.case.round == 2


def test_resident_reopens_only_after_an_unsatisfied_rating(loop: Loop) -> None:
    drive(loop, "closed").rate_resident("basically_satisfied")
    assert_refused(
        lambda: loop.reopen(loop.actors["resident"]),
        loop.case,
        IllegalState,
        "reopen_needs_unsatisfied_rating",
    )


# --- deadlines missed, supervision, escalation: only when due, only once -------------------------


def test_deadline_missed_only_after_the_deadline_and_once(loop: Loop) -> None:
    case = drive(loop, "whistled").case
    system = loop.actors["system"]
    deadline = case.obligations[LEAD]["response_deadline"]

    def record(at: datetime) -> None:
        case.record_deadline_missed(system, at, LEAD, "response")

    assert_refused(lambda: record(deadline), case, IllegalState, "not_overdue")
    record(deadline + timedelta(microseconds=1))
    assert_refused(lambda: record(deadline + STEP), case, IllegalState, "already_recorded")
    assert len(case.collect_events()) == 1


def test_no_response_is_overdue_once_reported_in(loop: Loop) -> None:
    case = drive(loop, "in_handling").case
    late = case.obligations[LEAD]["response_deadline"] + timedelta(days=1)
    assert_refused(
        lambda: case.record_deadline_missed(loop.actors["system"], late, LEAD, "response"),
        case,
        IllegalState,
        "not_overdue",
    )


def test_handling_missed_again_after_rework_gives_a_new_deadline(loop: Loop) -> None:
    """Once per obligation *and deadline*: a rework's fresh limit can be missed in its turn."""
    case = drive(loop, "in_handling").case
    centre = loop.actors["centre"]
    first = case.handling_deadline
    assert first is not None
    case.record_deadline_missed(centre, first + STEP, LEAD, "handling")
    loop.clock.set(first + 2 * STEP)
    loop.report_handling()
    loop.rework()
    second = case.handling_deadline
    assert second is not None
    assert second > first
    case.record_deadline_missed(centre, second + STEP, LEAD, "handling")
    missed = [e for e in case.collect_events() if isinstance(e, Case.DeadlineMissed)]
    assert [e.deadline for e in missed] == [first, second]


def test_supervision_once_per_colour_department_and_deadline(loop: Loop) -> None:
    case = drive(loop, "in_handling").case
    inspector = loop.actors["inspector"]

    def supervise(colour: str, department: str = LEAD) -> None:
        case.issue_supervision(inspector, loop.tick(), colour, department, "handling", "督办")

    supervise("yellow")
    assert_refused(lambda: supervise("yellow"), case, IllegalState, "already_supervised")
    supervise("red")
    supervise("yellow", ASSISTING)
    loop.report_handling()
    loop.clock.advance(timedelta(days=1))
    loop.rework()  # a day later: a new handling deadline, so a new round of supervision
    supervise("yellow")
    assert len(case.collect_events()) == 6


def test_escalation_once_per_response_deadline(loop: Loop) -> None:
    """Escalated, handed off, handed back: the fresh whistle may be escalated again."""
    case = drive(loop, "whistled").case
    system = loop.actors["system"]

    def escalate() -> None:
        case.escalate_to_district(system, loop.tick(), LEAD, "超时未报到")

    escalate()
    assert_refused(escalate, case, IllegalState, "already_escalated")
    loop.hand_off(RECEIVER)
    loop.hand_off(LEAD)
    escalate()
    assert len(case.escalated) == 2


def test_a_disputing_department_owes_no_response_until_responsibility_is_determined(
    loop: Loop,
) -> None:
    """It may not report in while the dispute is open, so the SLA clock must not count it late."""
    drive(loop, "disputed")
    receiver = loop.case.lead_department
    assert receiver is not None
    loop.clock.advance(timedelta(days=3))
    assert loop.case.due(receiver, "response") is None
    assert_refused(
        lambda: loop.case.record_deadline_missed(
            loop.actors["system"], loop.clock.now(), receiver, "response"
        ),
        loop.case,
        IllegalState,
        "not_overdue",
    )
