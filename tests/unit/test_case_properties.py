"""Random command sequences against one Case: refusals change nothing, the state stays coherent,
and the events alone rebuild exactly the same case (directly, and through a store's transcoder).

Each run starts from a stage of the closed loop (reported … rated unsatisfied), so deep states are
reached, then applies up to 40 commands with right and wrong actors, departments and arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from domain.actors import Actor
from domain.calendar import WorkingCalendar
from domain.case import Case
from domain.case_rules import (
    HANDLING_RESULTS,
    OPEN_STATUSES,
    REJECT_REASONS,
    REPORT_IN_MODES,
    SATISFACTION,
    SUPERVISION_COLOURS,
    Status,
)
from domain.clock import ManualClock
from domain.deadlines import Urgency
from domain.errors import DomainError
from domain.reference import DutyItem, ReferenceData
from tests.conftest import START
from tests.unit.builders import (
    ASSISTING,
    ITEM,
    LEAD,
    OUTSIDER,
    RECEIVER,
    STAGES,
    Loop,
    dept,
    drive,
    replay,
    report_case,
    state_of,
)

#: The departments of the shared `actors` fixture; CG-001 and CG-008 name three of them each.
DEPARTMENTS = [LEAD, ASSISTING, RECEIVER, OUTSIDER]
ITEM_CODES = [ITEM, "CG-008", None]
EVERYONE = ["resident", "grid", "street", "other_street", "centre", "inspector", "system"]

departments = st.sampled_from(DEPARTMENTS)
anyone = st.sampled_from(EVERYONE + DEPARTMENTS)


def mostly(*right: str) -> st.SearchStrategy[str]:
    """The kind of actor a command expects three times in four, anyone at all otherwise."""
    expected = st.sampled_from(right)
    return st.one_of(expected, expected, expected, anyone)


#: "@lead" is the case's current lead, "@receiver" the department a pending hand-off names.
department_actor = st.one_of(st.just("@lead"), st.just("@lead"), st.just("@receiver"), anyone)
street_actor = mostly("street", "centre")
oversight_actor = mostly("centre", "inspector", "system")
resident_actor = mostly("resident")
either_actor = st.one_of(street_actor, resident_actor)
text = st.sampled_from(["", "现场核查属实", "已处理"])
items = st.sampled_from(ITEM_CODES)
#: Withdrawals are right one time in three, so that most runs get further than a cancellation.
withdrawal = st.sampled_from(["", "x", "来电人撤诉"])
#: Mostly minutes, sometimes long enough for every deadline to pass.
pause = st.sampled_from(
    [timedelta(0), timedelta(minutes=10), timedelta(hours=3), timedelta(days=2), timedelta(days=9)]
)


def live(machine: CaseMachine) -> bool:
    """Rejected and cancelled cases are over: steps on them would only be refused, and are wasted."""
    return machine.case.status not in (Status.REJECTED, Status.CANCELLED)


class CaseMachine(RuleBasedStateMachine):
    def __init__(
        self, reference: ReferenceData, calendar: WorkingCalendar, actors: dict[str, Actor]
    ) -> None:
        super().__init__()
        self.reference, self.calendar, self.actors = reference, calendar, actors
        self.clock = ManualClock(START)
        self.case = report_case(actors["resident"], self.clock.now())
        self.events: list[Any] = list(self.case.collect_events())

    @initialize(stage=st.sampled_from(sorted(STAGES)))
    def start_at(self, stage: str) -> None:
        loop = Loop(self.case, self.clock, self.calendar, self.reference, self.actors)
        self.events.extend(drive(loop, stage).history)

    def who(self, key: str) -> Actor:
        if key == "@lead":
            return dept(self.case.lead_department or LEAD)
        if key == "@receiver":
            return dept(self.case.pending_handoff["to"] if self.case.pending_handoff else RECEIVER)
        return dept(key) if key in DEPARTMENTS else self.actors[key]

    def item(self, code: str | None) -> DutyItem | None:
        return None if code is None else self.reference.duty_items[code]

    def attempt(self, delay: timedelta, command: Callable[[datetime], object]) -> None:
        """Runs one command; a refusal must leave no trace, a success exactly one event."""
        at = self.clock.advance(delay)
        before, version = state_of(self.case), self.case.version
        refusal: DomainError | None = None
        try:
            command(at)
        except DomainError as error:
            refusal = error
        if refusal is not None:
            assert refusal.code
            assert refusal.message_zh
            assert refusal.message_en
            assert self.case.version == version
            assert not self.case.pending_events
            assert state_of(self.case) == before
            return
        new = self.case.collect_events()
        assert [e.originator_version for e in new] == [version + 1]
        assert new[0].timestamp == at
        self.events.extend(new)

    # --- the commands, with arguments right and wrong ---------------------------------------

    @precondition(live)
    @rule(who=street_actor, delay=pause)
    def accept(self, who: str, delay: timedelta) -> None:
        self.attempt(delay, lambda at: self.case.accept(self.who(who), at))

    @precondition(live)
    @rule(
        who=street_actor,
        delay=pause,
        reason=st.sampled_from([*REJECT_REASONS, "whim", "", "?", "!"]),
        duplicate_of=st.sampled_from([None, "c-1"]),
    )
    def reject(self, who: str, delay: timedelta, reason: str, duplicate_of: str | None) -> None:
        actor = self.who(who)
        self.attempt(delay, lambda at: self.case.reject(actor, at, reason, "", duplicate_of))

    @precondition(live)
    @rule(
        who=street_actor,
        delay=pause,
        code=items,
        lead=departments,
        assisting=st.lists(departments, max_size=2),
        urgency=st.sampled_from(Urgency),
        justification=st.sampled_from([None, "化学品泄漏"]),
    )
    def whistle(
        self,
        who: str,
        delay: timedelta,
        code: str | None,
        lead: str,
        assisting: list[str],
        urgency: Urgency,
        justification: str | None,
    ) -> None:
        actor, item = self.who(who), self.item(code)

        def whistle(at: datetime) -> None:
            self.case.whistle(
                actor,
                at,
                lead=lead,
                assisting=tuple(assisting),
                item=item,
                duty_list_version=1,
                urgency=urgency,
                justification=justification,
                calendar=self.calendar,
            )

        self.attempt(delay, whistle)

    @precondition(live)
    @rule(who=department_actor, delay=pause, mode=st.sampled_from([*REPORT_IN_MODES, "fax"]))
    def report_in(self, who: str, delay: timedelta, mode: str) -> None:
        self.attempt(delay, lambda at: self.case.report_in(self.who(who), at, mode))

    @precondition(live)
    @rule(who=mostly("@lead"), delay=pause, to=departments, reason=text)
    def hand_off(self, who: str, delay: timedelta, to: str, reason: str) -> None:
        actor, item = self.who(who), self.item(self.case.duty_item)
        self.attempt(delay, lambda at: self.case.hand_off(actor, at, to, reason, item=item))

    @precondition(live)
    @rule(who=mostly("@receiver"), delay=pause, reason=text)
    def dispute_hand_off(self, who: str, delay: timedelta, reason: str) -> None:
        self.attempt(delay, lambda at: self.case.dispute_hand_off(self.who(who), at, reason))

    @precondition(live)
    @rule(who=mostly("centre"), delay=pause, department=departments, basis=text)
    def determine_responsibility(
        self, who: str, delay: timedelta, department: str, basis: str
    ) -> None:
        actor = self.who(who)
        self.attempt(
            delay, lambda at: self.case.determine_responsibility(actor, at, department, basis)
        )

    @precondition(live)
    @rule(who=street_actor, delay=pause, among=st.lists(departments, max_size=3), plan=text)
    def hold_consultation(self, who: str, delay: timedelta, among: list[str], plan: str) -> None:
        actor = self.who(who)
        self.attempt(delay, lambda at: self.case.hold_consultation(actor, at, tuple(among), plan))

    @precondition(live)
    @rule(who=mostly("@lead"), delay=pause, result=st.sampled_from(HANDLING_RESULTS), note=text)
    def report_handling(self, who: str, delay: timedelta, result: str, note: str) -> None:
        actor = self.who(who)
        self.attempt(delay, lambda at: self.case.report_handling(actor, at, result, note))

    @precondition(live)
    @rule(who=street_actor, delay=pause, reason=text)
    def send_back_for_rework(self, who: str, delay: timedelta, reason: str) -> None:
        actor, item = self.who(who), self.item(self.case.duty_item)
        self.attempt(
            delay,
            lambda at: self.case.send_back_for_rework(actor, at, reason, item, self.calendar),
        )

    @precondition(live)
    @rule(who=street_actor, delay=pause)
    def close(self, who: str, delay: timedelta) -> None:
        self.attempt(delay, lambda at: self.case.close(self.who(who), at))

    @precondition(live)
    @rule(
        who=resident_actor,
        delay=pause,
        satisfaction=st.sampled_from([*SATISFACTION, "meh"]),
        solved=st.booleans(),
    )
    def rate_by_resident(self, who: str, delay: timedelta, satisfaction: str, solved: bool) -> None:
        actor = self.who(who)
        self.attempt(delay, lambda at: self.case.rate_by_resident(actor, at, satisfaction, solved))

    @precondition(live)
    @rule(
        who=street_actor,
        delay=pause,
        scores=st.dictionaries(departments, st.integers(-5, 105), max_size=3),
    )
    def rate_by_street(self, who: str, delay: timedelta, scores: dict[str, int]) -> None:
        actor = self.who(who)
        self.attempt(delay, lambda at: self.case.rate_by_street(actor, at, scores))

    @precondition(live)
    @rule(who=either_actor, delay=pause, reason=text)
    def reopen(self, who: str, delay: timedelta, reason: str) -> None:
        actor, item = self.who(who), self.item(self.case.duty_item)
        self.attempt(delay, lambda at: self.case.reopen(actor, at, reason, item, self.calendar))

    @precondition(live)
    @rule(
        who=oversight_actor,
        delay=pause,
        department=departments,
        obligation=st.sampled_from(["response", "handling", "lunch"]),
    )
    def record_deadline_missed(
        self, who: str, delay: timedelta, department: str, obligation: str
    ) -> None:
        actor = self.who(who)
        self.attempt(
            delay, lambda at: self.case.record_deadline_missed(actor, at, department, obligation)
        )

    @precondition(live)
    @rule(
        who=oversight_actor,
        delay=pause,
        colour=st.sampled_from([*SUPERVISION_COLOURS, "purple"]),
        department=departments,
        obligation=st.sampled_from([None, "response", "handling"]),
        reason=text,
    )
    def issue_supervision(
        self,
        who: str,
        delay: timedelta,
        colour: str,
        department: str,
        obligation: str | None,
        reason: str,
    ) -> None:
        actor = self.who(who)
        self.attempt(
            delay,
            lambda at: self.case.issue_supervision(
                actor, at, colour, department, obligation, reason
            ),
        )

    @precondition(live)
    @rule(who=st.one_of(oversight_actor, street_actor), delay=pause, department=departments)
    def escalate_to_district(self, who: str, delay: timedelta, department: str) -> None:
        actor = self.who(who)
        self.attempt(
            delay, lambda at: self.case.escalate_to_district(actor, at, department, "未报到")
        )

    @precondition(live)
    @rule(who=street_actor, delay=pause, reason=withdrawal)
    def cancel(self, who: str, delay: timedelta, reason: str) -> None:
        self.attempt(delay, lambda at: self.case.cancel(self.who(who), at, reason))

    @precondition(lambda machine: not live(machine))
    @rule(who=either_actor, delay=pause)
    def act_on_a_finished_case(self, who: str, delay: timedelta) -> None:
        actor, item = self.who(who), self.item(self.case.duty_item)
        self.attempt(delay, lambda at: self.case.reopen(actor, at, "重新办理", item, self.calendar))
        self.attempt(delay, lambda at: self.case.accept(actor, at))

    # --- what must always hold --------------------------------------------------------------

    @invariant()
    def state_is_coherent(self) -> None:
        case = self.case
        status = Status(case.status)
        lead = case.lead_department
        if status in (*OPEN_STATUSES, Status.CLOSED):
            assert lead is not None
        if lead is not None:
            assert case.obligations[lead]["active"], "the lead has an active obligation"
            assert case.obligations[lead]["role"] == "lead"
        if status in (Status.HANDLED, Status.CLOSED):
            assert case.handling is not None
        if case.handling is not None:
            assert case.handling["department"] == lead
        if status is Status.IN_HANDLING:
            assert case.obligations[str(lead)]["reported_in_at"] is not None
        if status is Status.WHISTLED:
            assert case.obligations[str(lead)]["reported_in_at"] is None
        if case.resident_rating is not None or case.street_scores is not None:
            assert status is Status.CLOSED
        if status is Status.DISPUTED:
            assert case.pending_handoff is not None
        if case.pending_handoff is not None:
            assert case.pending_handoff["to"] == lead
            assert status in (Status.WHISTLED, Status.DISPUTED, Status.CANCELLED)
        assert case.closed_at is None or status is Status.CLOSED
        assert [e.originator_version for e in self.events] == list(range(1, case.version + 1))

    def teardown(self) -> None:
        """The events are the case: replayed directly and through a store, nothing differs."""
        expected = state_of(self.case)
        assert state_of(replay(self.events)) == expected
        store = Application[UUID](env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        store.save(*self.events)
        stored: object = store.repository.get(self.case.id)
        assert isinstance(stored, Case)
        assert stored.public_state() == self.case.public_state()
        assert state_of(stored) == expected


def test_random_command_sequences(
    reference: ReferenceData, calendar: WorkingCalendar, actors: dict[str, Actor]
) -> None:
    class Machine(CaseMachine):
        def __init__(self) -> None:
            super().__init__(reference, calendar, actors)

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=200,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
