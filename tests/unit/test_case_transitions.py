"""The closed loop's transitions: every legal one records its event, every illegal one is refused cleanly."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import timedelta

import pytest

from domain.actors import Actor
from domain.case import Case
from domain.case_rules import Status
from domain.errors import DomainError, IllegalState, InvalidInput, WrongActor
from tests.unit.builders import (
    ASSISTING,
    ITEM,
    LEAD,
    OUTSIDER,
    RECEIVER,
    STEP,
    STREET,
    Loop,
    assert_refused,
    dept,
    drive,
)


def only_event(case: Case) -> Case.Event:
    """The single event the last command recorded."""
    events = case.collect_events()
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, Case.Event)
    return event


# --- legal transitions, one by one ---------------------------------------------------------------


def test_report_opens_a_case_at_the_collect_stage(loop: Loop, actors: dict[str, Actor]) -> None:
    case = loop.case
    [event] = case.collect_events()
    assert isinstance(event, Case.CaseReported)
    assert event.actor == {"role": "resident", "id": "r-1001"}
    assert event.timestamp == loop.clock.now()
    assert (case.status, case.stage, case.version) == (Status.REPORTED, "collect", 1)
    assert case.street == STREET
    assert case.reporter == actors["resident"].as_dict()


def test_accept(loop: Loop) -> None:
    drive(loop, "reported").accept()
    event = only_event(loop.case)
    assert isinstance(event, Case.CaseAccepted)
    assert event.actor == {"role": "street", "id": STREET}
    assert (loop.case.status, loop.case.stage) == (Status.ACCEPTED, "dispatch")


@pytest.mark.parametrize("stage", ["reported", "accepted"])
def test_reject_from_reported_or_accepted(loop: Loop, stage: str) -> None:
    drive(loop, stage).reject()
    event = only_event(loop.case)
    assert isinstance(event, Case.CaseRejected)
    assert event.reason == "not_public"
    assert loop.case.status == Status.REJECTED


def test_reject_as_duplicate_names_the_original(loop: Loop) -> None:
    drive(loop, "reported")
    street = loop.actors["street"]
    assert_refused(
        lambda: loop.case.reject(street, loop.tick(), "duplicate"),
        loop.case,
        InvalidInput,
        "duplicate_of_required",
    )
    loop.case.reject(street, loop.tick(), "duplicate", duplicate_of="c-42")
    event = only_event(loop.case)
    assert isinstance(event, Case.CaseRejected)
    assert event.duplicate_of == "c-42"


def test_whistle_names_lead_and_assisting_under_the_item(loop: Loop) -> None:
    drive(loop, "accepted").whistle()
    at = loop.clock.now()
    event = only_event(loop.case)
    assert isinstance(event, Case.Whistled)
    assert (event.lead_department, event.assisting_departments) == (LEAD, [ASSISTING])
    assert (event.duty_item, event.duty_list_version, event.urgency) == (ITEM, 1, "normal")
    assert event.response_deadline == at + timedelta(hours=24)
    case = loop.case
    assert (case.status, case.lead_department, case.duty_item) == (Status.WHISTLED, LEAD, ITEM)
    assert case.obligations[LEAD]["role"] == "lead"
    assert case.obligations[ASSISTING]["role"] == "assisting"
    assert all(o["active"] and o["reported_in_at"] is None for o in case.obligations.values())


def test_lead_reporting_in_starts_handling(loop: Loop) -> None:
    drive(loop, "whistled").report_in(LEAD, "joint_enforcement")
    event = only_event(loop.case)
    assert isinstance(event, Case.ReportedIn)
    assert (event.department, event.mode) == (LEAD, "joint_enforcement")
    assert loop.case.status == Status.IN_HANDLING
    assert loop.case.obligations[LEAD]["reported_in_at"] == loop.clock.now()


def test_assisting_reporting_in_leaves_the_lead_to_answer(loop: Loop) -> None:
    """Only the lead's report-in moves the case into handling."""
    drive(loop, "whistled").report_in(ASSISTING, "remote")
    assert isinstance(only_event(loop.case), Case.ReportedIn)
    assert loop.case.status == Status.WHISTLED
    assert loop.case.obligations[ASSISTING]["mode"] == "remote"
    assert loop.case.obligations[LEAD]["reported_in_at"] is None


@pytest.mark.parametrize("stage", ["whistled", "in_handling"])
def test_hand_off_makes_the_receiver_lead(loop: Loop, stage: str) -> None:
    drive(loop, stage).hand_off(RECEIVER)
    at = loop.clock.now()
    event = only_event(loop.case)
    assert isinstance(event, Case.HandedOff)
    assert (event.from_department, event.to_department) == (LEAD, RECEIVER)
    case = loop.case
    assert (case.status, case.lead_department) == (Status.WHISTLED, RECEIVER)
    assert case.pending_handoff == {"from": LEAD, "to": RECEIVER}
    assert case.obligations[LEAD]["active"] is False
    assert case.obligations[RECEIVER]["response_deadline"] == at + timedelta(hours=24)


def test_receiver_reporting_in_accepts_the_hand_off(loop: Loop) -> None:
    drive(loop, "handed_off").report_in(RECEIVER)
    assert isinstance(only_event(loop.case), Case.ReportedIn)
    assert (loop.case.status, loop.case.pending_handoff) == (Status.IN_HANDLING, None)


def test_receiver_disputes_the_hand_off(loop: Loop) -> None:
    drive(loop, "handed_off").dispute()
    event = only_event(loop.case)
    assert isinstance(event, Case.HandOffDisputed)
    assert event.department == RECEIVER
    assert (loop.case.status, loop.case.stage) == (Status.DISPUTED, "handle")


def test_command_centre_sends_a_disputed_case_back_to_the_original_lead(loop: Loop) -> None:
    drive(loop, "disputed").determine(LEAD)
    event = only_event(loop.case)
    assert isinstance(event, Case.ResponsibilityDetermined)
    assert (event.department, event.disputed_by, event.handed_off_by) == (LEAD, RECEIVER, LEAD)
    case = loop.case
    assert (case.status, case.lead_department, case.pending_handoff) == (
        Status.WHISTLED,
        LEAD,
        None,
    )
    assert case.obligations[LEAD]["active"] is True
    assert case.obligations[LEAD]["role"] == "lead"
    assert case.obligations[RECEIVER]["active"] is False


def test_determination_for_a_lead_that_had_reported_in_resumes_handling(loop: Loop) -> None:
    drive(loop, "in_handling").hand_off(RECEIVER)
    loop.dispute()
    loop.determine(LEAD)
    assert loop.case.status == Status.IN_HANDLING


def test_determination_can_name_a_third_department(loop: Loop) -> None:
    drive(loop, "disputed").determine(OUTSIDER)
    case = loop.case
    assert (case.status, case.lead_department) == (Status.WHISTLED, OUTSIDER)
    assert case.obligations[OUTSIDER]["role"] == "lead"
    assert case.obligations[LEAD]["active"] is False
    assert case.obligations[RECEIVER]["active"] is False


@pytest.mark.parametrize("stage", ["whistled", "in_handling", "disputed"])
def test_consultation_is_counted_without_changing_status(loop: Loop, stage: str) -> None:
    status = drive(loop, stage).case.status
    loop.consult((LEAD, ASSISTING, LEAD))
    event = only_event(loop.case)
    assert isinstance(event, Case.ConsultationHeld)
    assert event.departments == sorted({LEAD, ASSISTING})
    assert (loop.case.status, loop.case.consultations) == (status, 1)


def test_lead_reports_handling(loop: Loop) -> None:
    drive(loop, "in_handling").report_handling("partly_resolved", "已拆除大部分，余下待审批")
    event = only_event(loop.case)
    assert isinstance(event, Case.HandlingReported)
    assert loop.case.status == Status.HANDLED
    assert loop.case.handling == {
        "department": LEAD,
        "result": "partly_resolved",
        "at": loop.clock.now(),
    }


def test_rework_returns_the_case_to_the_lead_with_a_new_handling_limit(loop: Loop) -> None:
    drive(loop, "handled").rework()
    at = loop.clock.now()
    event = only_event(loop.case)
    assert isinstance(event, Case.SentBackForRework)
    case = loop.case
    assert (case.status, case.handling, case.rework_count) == (Status.IN_HANDLING, None, 1)
    assert case.handling_deadline == loop.calendar.add_working_days(at, 5)


def test_close(loop: Loop) -> None:
    drive(loop, "handled").close()
    assert isinstance(only_event(loop.case), Case.Closed)
    assert (loop.case.status, loop.case.stage) == (Status.CLOSED, "evaluate")
    assert loop.case.closed_at == loop.clock.now()


def test_resident_and_street_rate_a_closed_case(loop: Loop) -> None:
    drive(loop, "closed").rate_resident("basically_satisfied", solved=True)
    resident = only_event(loop.case)
    assert isinstance(resident, Case.Rated)
    assert resident.department_scores is None
    loop.rate_street({LEAD: 88, ASSISTING: 75})
    street = only_event(loop.case)
    assert isinstance(street, Case.Rated)
    assert street.department_scores == {ASSISTING: 75, LEAD: 88}
    assert loop.case.resident_rating == {"satisfaction": "basically_satisfied", "solved": True}
    assert loop.case.street_scores == {LEAD: 88, ASSISTING: 75}
    assert loop.case.status == Status.CLOSED


def test_unsatisfied_resident_reopens_for_a_second_round(loop: Loop) -> None:
    drive(loop, "rated_unsatisfied").reopen(loop.actors["resident"])
    at = loop.clock.now()
    event = only_event(loop.case)
    assert isinstance(event, Case.Reopened)
    case = loop.case
    assert (case.status, case.round) == (Status.IN_HANDLING, 2)
    assert (case.handling, case.resident_rating, case.street_scores, case.closed_at) == (
        None,
        None,
        None,
        None,
    )
    assert case.handling_deadline == loop.calendar.add_working_days(at, 5)


@pytest.mark.parametrize("who", ["street", "centre"])
def test_street_or_command_centre_reopens_a_closed_case(loop: Loop, who: str) -> None:
    drive(loop, "closed").reopen(loop.actors[who])
    assert isinstance(only_event(loop.case), Case.Reopened)
    assert loop.case.status == Status.IN_HANDLING


def test_the_whole_loop_twice(loop: Loop) -> None:
    """A second round is rated afresh: 'once per round' is per round, not per case."""
    drive(loop, "rated_unsatisfied").reopen(loop.actors["resident"])
    loop.report_handling()
    loop.close()
    loop.rate_resident("satisfied")
    loop.rate_street()
    case = loop.case
    assert (case.status, case.round) == (Status.CLOSED, 2)
    assert case.resident_rating == {"satisfaction": "satisfied", "solved": True}
    events = case.collect_events()
    assert [type(e).__name__ for e in events] == [
        "Reopened",
        "HandlingReported",
        "Closed",
        "Rated",
        "Rated",
    ]
    assert [e.originator_version for e in events] == list(range(8, 13))


def test_deadline_missed_is_recorded_after_the_response_deadline(loop: Loop) -> None:
    case = drive(loop, "whistled").case
    deadline = case.obligations[LEAD]["response_deadline"]
    case.record_deadline_missed(loop.actors["system"], deadline + STEP, LEAD, "response")
    event = only_event(case)
    assert isinstance(event, Case.DeadlineMissed)
    assert (event.department, event.obligation, event.deadline) == (LEAD, "response", deadline)
    assert case.status == Status.WHISTLED


@pytest.mark.parametrize("colour", ["white", "yellow", "red"])
def test_supervision_in_each_colour(loop: Loop, colour: str) -> None:
    case = drive(loop, "in_handling").case
    case.issue_supervision(loop.actors["inspector"], loop.tick(), colour, LEAD, "handling", "督办")
    event = only_event(case)
    assert isinstance(event, Case.SupervisionIssued)
    assert (event.colour, event.department, event.obligation) == (colour, LEAD, "handling")
    assert case.status == Status.IN_HANDLING


def test_escalation_of_a_department_that_has_not_reported_in(loop: Loop) -> None:
    case = drive(loop, "in_handling").case
    case.escalate_to_district(loop.actors["system"], loop.tick(), ASSISTING, "超时未报到")
    event = only_event(case)
    assert isinstance(event, Case.EscalatedToDistrict)
    assert event.department == ASSISTING
    assert case.status == Status.IN_HANDLING


CANCELLABLE = [
    "reported",
    "accepted",
    "whistled",
    "in_handling",
    "handed_off",
    "disputed",
    "handled",
]


@pytest.mark.parametrize("stage", CANCELLABLE)
def test_cancel_before_closure(loop: Loop, stage: str) -> None:
    drive(loop, stage).cancel()
    assert isinstance(only_event(loop.case), Case.CaseCancelled)
    assert (loop.case.status, loop.case.stage) == (Status.CANCELLED, "dispatch")


# --- illegal transitions: every command in every reachable status --------------------------------

Refusal = tuple[type[DomainError], str]
ILLEGAL: Refusal = (IllegalState, "illegal_transition")
NOT_LEAD: Refusal = (WrongActor, "not_lead_department")
NOT_CLOSED: Refusal = (IllegalState, "case_not_closed")
OPEN = frozenset({"whistled", "in_handling", "handed_off", "disputed", "handled"})
UNWHISTLED = ("reported", "accepted", "rejected", "cancelled")


def _later(loop: Loop) -> Callable[[], None]:
    """The SLA clock, a month on: every response still owed is overdue by then."""
    at = loop.clock.now() + timedelta(days=30)
    return lambda: loop.case.record_deadline_missed(
        loop.actors["system"], at, ASSISTING, "response"
    )


#: Each command as its right actor would send it, with valid arguments: only the status can refuse it.
COMMANDS: dict[str, Callable[[Loop], Callable[[], None]]] = {
    "accept": lambda lp: lp.accept,
    "reject": lambda lp: lp.reject,
    "whistle": lambda lp: lp.whistle,
    "report_in": lambda lp: lp.report_in,
    "hand_off": lambda lp: lambda: lp.hand_off(OUTSIDER),
    "dispute_hand_off": lambda lp: (
        lambda: lp.case.dispute_hand_off(dept(RECEIVER), lp.tick(), "不属本部门")
    ),
    "determine_responsibility": lambda lp: lp.determine,
    "hold_consultation": lambda lp: lp.consult,
    "report_handling": lambda lp: lp.report_handling,
    "send_back_for_rework": lambda lp: lp.rework,
    "close": lambda lp: lp.close,
    "rate_by_resident": lambda lp: lp.rate_resident,
    "rate_by_street": lambda lp: lp.rate_street,
    "reopen": lambda lp: lp.reopen,
    "record_deadline_missed": _later,
    "issue_supervision": lambda lp: (
        lambda: lp.case.issue_supervision(
            lp.actors["centre"], lp.tick(), "yellow", LEAD, None, "督办"
        )
    ),
    "escalate_to_district": lambda lp: (
        lambda: lp.case.escalate_to_district(lp.actors["street"], lp.tick(), ASSISTING, "未报到")
    ),
    "cancel": lambda lp: lp.cancel,
}

#: command -> (stages where it is legal, its refusal elsewhere, refusals that differ by stage).
RULES: dict[str, tuple[frozenset[str], Refusal, dict[str, Refusal]]] = {
    "accept": (frozenset({"reported"}), ILLEGAL, {}),
    "reject": (frozenset({"reported", "accepted"}), ILLEGAL, {}),
    "whistle": (frozenset({"accepted"}), ILLEGAL, {}),
    "report_in": (
        frozenset({"whistled", "handed_off"}),
        ILLEGAL,
        {
            "in_handling": (IllegalState, "already_reported_in"),
            "disputed": (IllegalState, "responsibility_disputed"),
        },
    ),
    "hand_off": (frozenset({"whistled", "in_handling", "handed_off"}), ILLEGAL, {}),
    "dispute_hand_off": (
        frozenset({"handed_off"}),
        (IllegalState, "no_hand_off_to_dispute"),
        {"disputed": ILLEGAL},
    ),
    "determine_responsibility": (frozenset({"disputed"}), ILLEGAL, {}),
    "hold_consultation": (OPEN - {"handled"}, ILLEGAL, {}),
    # Before a whistle there is no lead, so every department is the wrong actor.
    "report_handling": (frozenset({"in_handling"}), ILLEGAL, dict.fromkeys(UNWHISTLED, NOT_LEAD)),
    "send_back_for_rework": (frozenset({"handled"}), ILLEGAL, {}),
    "close": (
        frozenset({"handled"}),
        (IllegalState, "handling_not_reported"),
        dict.fromkeys(("closed", "rejected", "cancelled"), ILLEGAL),
    ),
    "rate_by_resident": (frozenset({"closed"}), NOT_CLOSED, {}),
    "rate_by_street": (frozenset({"closed"}), NOT_CLOSED, {}),
    "reopen": (frozenset({"closed"}), ILLEGAL, {}),
    # Nothing is due on a case that is not open, so nothing can be overdue.
    "record_deadline_missed": (OPEN, (IllegalState, "not_overdue"), {}),
    "issue_supervision": (OPEN, ILLEGAL, {}),
    "escalate_to_district": (OPEN, ILLEGAL, {}),
    "cancel": (OPEN | {"reported", "accepted"}, ILLEGAL, {}),
}

TABLE_STAGES = ["reported", "accepted", "rejected", "cancelled", *sorted(OPEN), "closed"]
#: Public methods of Case that answer questions rather than record events.
QUERIES = {"due", "supervision_key", "escalation_key", "public_state"}
#: Public methods that are not commands: queries, and the library's hook every command goes through.
NOT_COMMANDS = QUERIES | {"trigger_event"}


def test_the_table_covers_every_status_and_command(loop: Loop) -> None:
    reached = {drive(loop.another(), stage).case.status for stage in TABLE_STAGES}
    assert reached == set(Status)
    commands = {n for n, v in vars(Case).items() if inspect.isfunction(v) and n[0] != "_"}
    assert set(RULES) == set(COMMANDS) == commands - NOT_COMMANDS


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("stage", TABLE_STAGES)
def test_command_in_status(loop: Loop, stage: str, command: str) -> None:
    legal, refusal, by_stage = RULES[command]
    call = COMMANDS[command](drive(loop, stage))
    if stage in legal:
        call()
        assert len(loop.case.collect_events()) == 1
    else:
        error, code = by_stage.get(stage, refusal)
        assert_refused(call, loop.case, error, code)
