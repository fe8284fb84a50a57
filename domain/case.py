"""The Case aggregate: one problem's whole closed loop, from report to rating, as immutable events.

Command methods check every rule first and only then trigger their event, so a broken rule never leaves
a half-written case. Events carry plain JSON-able values and their `actor`; their `timestamp` is the
time the caller's clock gave, never the machine's. Topics are stable (`whistleloop.case.<Event>`) so
a refactor cannot orphan stored events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate

from domain.actors import Actor, Role
from domain.admission import admit_whistle
from domain.calendar import WorkingCalendar
from domain.case_rules import (
    CLOSED_LOOP_STAGE,
    HANDLING_RESULTS,
    OPEN_STATUSES,
    REJECT_REASONS,
    REPORT_IN_MODES,
    REPORTER_ROLES,
    SATISFACTION,
    SOURCES,
    SUPERVISION_COLOURS,
    Status,
    require_choice,
    require_contact,
    require_plain_text,
    require_status,
    require_text,
)
from domain.deadlines import Urgency, handling_deadline, response_limit, whistle_deadlines
from domain.errors import IllegalState, InvalidInput, WrongActor
from domain.reference.model import DutyItem

#: Namespace of deterministic case ids: uuid5(CASE_NAMESPACE, idempotency key).
CASE_NAMESPACE = UUID("5b0c9f8e-6f4e-4d5a-9a53-7768697374ae")

Json = dict[str, Any]


class Case(Aggregate):
    TOPIC = "whistleloop.case.Case"

    class Event(Aggregate.Event):
        actor: dict[str, str]

    Created = None  # type: ignore[assignment]  # CaseReported replaces it, named as the domain says

    class CaseReported(Aggregate.Created):
        TOPIC = "whistleloop.case.CaseReported"
        actor: dict[str, str]
        source: str
        street: str
        community: str | None
        grid: str | None
        title: str
        description: str
        address: str
        suggested_item: str | None
        contact: dict[str, str] | None

    # --- creation -----------------------------------------------------------------------------

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        """Records an event only when all its text is plain (see `require_plain_text`)."""
        for name, value in kwargs.items():
            require_plain_text(name, value)
        super().trigger_event(event_class, **kwargs)

    @staticmethod
    def id_for(idempotency_key: str | None) -> UUID:
        """A retried report with the same key lands on the same case."""
        return uuid5(CASE_NAMESPACE, idempotency_key) if idempotency_key else uuid4()

    @classmethod
    def report(cls, actor: Actor, at: datetime, *, case_id: UUID, **fields: Any) -> Case:
        """收集: a problem enters the loop. Location codes are checked by the caller's reference data."""
        if actor.role.value not in REPORTER_ROLES:
            raise WrongActor(
                "actor_not_allowed", "该角色不能上报问题", f"{actor.role} cannot report"
            )
        require_choice("source", fields["source"], SOURCES)
        require_text("title", fields["title"], 1, 200)
        require_text("description", fields["description"], 1, 4000)
        require_text("address", fields.get("address", ""), 0, 500)
        if actor.role is Role.STREET and actor.id != fields["street"]:
            raise WrongActor(
                "other_street", "街乡只能上报本辖区问题", "a street reports its own area"
            )
        require_contact(fields.get("contact"))
        for name, value in fields.items():
            require_plain_text(name, value)
        return cls._create(
            cls.CaseReported,
            id=case_id,
            timestamp=at,
            actor=actor.as_dict(),
            community=fields.get("community"),
            grid=fields.get("grid"),
            address=fields.get("address", ""),
            suggested_item=fields.get("suggested_item"),
            contact=fields.get("contact"),
            source=fields["source"],
            street=fields["street"],
            title=fields["title"],
            description=fields["description"],
        )

    def __init__(
        self,
        actor: dict[str, str],
        source: str,
        street: str,
        community: str | None,
        grid: str | None,
        title: str,
        description: str,
        address: str,
        suggested_item: str | None,
        contact: dict[str, str] | None,
    ) -> None:
        self.reporter = actor
        self.source = source
        self.street = street
        self.community = community
        self.grid = grid
        self.title = title
        self.description = description
        self.address = address
        self.suggested_item = suggested_item
        self.contact = contact
        self.status: str = Status.REPORTED
        self.duty_item: str | None = None
        self.duty_list_version: int | None = None
        self.urgency: str = Urgency.NORMAL
        self.lead_department: str | None = None
        self.obligations: dict[str, Json] = {}
        self.handling_deadline: datetime | None = None
        self.emergency_deadlines: dict[str, datetime] = {}
        self.pending_handoff: Json | None = None
        self.handling: Json | None = None
        self.resident_rating: Json | None = None
        self.street_scores: dict[str, int] | None = None
        self.round = 1
        self.rework_count = 0
        self.consultations = 0
        self.closed_at: datetime | None = None
        self.missed: list[str] = []
        self.supervisions: list[str] = []
        self.escalated: list[str] = []

    @property
    def stage(self) -> str:
        """The closed-loop stage (收集/分流/处置/反馈/评价) the dashboard's funnel counts."""
        return CLOSED_LOOP_STAGE[Status(self.status)]

    # --- street: accept, reject, whistle ------------------------------------------------------

    class CaseAccepted(Event):
        TOPIC = "whistleloop.case.CaseAccepted"
        note: str

        def apply(self, case: Case) -> None:
            case.status = Status.ACCEPTED

    def accept(self, actor: Actor, at: datetime, note: str = "") -> None:
        self._require_street(actor)
        require_status(self, Status.REPORTED)
        self.trigger_event(self.CaseAccepted, timestamp=at, actor=actor.as_dict(), note=note)

    class CaseRejected(Event):
        TOPIC = "whistleloop.case.CaseRejected"
        reason: str
        note: str
        duplicate_of: str | None

        def apply(self, case: Case) -> None:
            case.status = Status.REJECTED

    def reject(
        self,
        actor: Actor,
        at: datetime,
        reason: str,
        note: str = "",
        duplicate_of: str | None = None,
    ) -> None:
        self._require_street(actor)
        require_status(self, Status.REPORTED, Status.ACCEPTED)
        require_choice("reason", reason, REJECT_REASONS)
        if reason == "duplicate" and not duplicate_of:
            raise InvalidInput(
                "duplicate_of_required", "须注明重复的案件", "name the case this repeats"
            )
        self.trigger_event(
            self.CaseRejected,
            timestamp=at,
            actor=actor.as_dict(),
            reason=reason,
            note=note,
            duplicate_of=duplicate_of,
        )

    class Whistled(Event):
        """Version 2 added `emergency_deadlines` (突发事件 steps); version-1 rows read as having none."""

        TOPIC = "whistleloop.case.Whistled"
        class_version = 2
        lead_department: str
        assisting_departments: list[str]
        duty_item: str | None
        duty_list_version: int
        urgency: str
        response_deadline: datetime
        handling_deadline: datetime
        emergency_deadlines: dict[str, datetime]
        justification: str | None

        @staticmethod
        def upcast_v1_v2(state: Json) -> None:
            state["emergency_deadlines"] = {}

        def apply(self, case: Case) -> None:
            case.status = Status.WHISTLED
            case.duty_item = self.duty_item
            case.duty_list_version = self.duty_list_version
            case.urgency = self.urgency
            case.lead_department = self.lead_department
            case.handling_deadline = self.handling_deadline
            case.emergency_deadlines = dict(self.emergency_deadlines)
            for dept in [self.lead_department, *self.assisting_departments]:
                role = "lead" if dept == self.lead_department else "assisting"
                case.obligations[dept] = _obligation(role, self.timestamp, self.response_deadline)

    def whistle(
        self,
        actor: Actor,
        at: datetime,
        *,
        lead: str,
        assisting: tuple[str, ...] = (),
        item: DutyItem | None,
        duty_list_version: int,
        urgency: Urgency = Urgency.NORMAL,
        justification: str | None = None,
        calendar: WorkingCalendar,
    ) -> None:
        """吹哨: name the responsible departments under a duty item (or a justified emergency)."""
        self._require_street(actor)
        require_status(self, Status.ACCEPTED)
        admit_whistle(item, lead, assisting, urgency, justification)
        deadlines = whistle_deadlines(at, urgency, item, calendar)
        self.trigger_event(
            self.Whistled,
            timestamp=at,
            actor=actor.as_dict(),
            lead_department=lead,
            assisting_departments=list(assisting),
            duty_item=item.code if item else None,
            duty_list_version=duty_list_version,
            urgency=urgency.value,
            response_deadline=deadlines.response,
            handling_deadline=deadlines.handling,
            emergency_deadlines=deadlines.emergency_steps,
            justification=justification,
        )

    # --- departments: report in, hand off, dispute, handle --------------------------------------

    class ReportedIn(Event):
        TOPIC = "whistleloop.case.ReportedIn"
        department: str
        mode: str
        note: str

        def apply(self, case: Case) -> None:
            obligation = case.obligations[self.department]
            obligation["reported_in_at"] = self.timestamp
            obligation["mode"] = self.mode
            if self.department == case.lead_department and case.status == Status.WHISTLED:
                case.status = Status.IN_HANDLING
            if case.pending_handoff and case.pending_handoff["to"] == self.department:
                case.pending_handoff = None

    def report_in(self, actor: Actor, at: datetime, mode: str, note: str = "") -> None:
        """报到: a whistled department answers, on site, remotely, jointly or by consultation."""
        dept = self._require_department(actor)
        require_status(self, Status.WHISTLED, Status.IN_HANDLING, Status.DISPUTED)
        require_choice("mode", mode, REPORT_IN_MODES)
        obligation = self.obligations.get(dept)
        if obligation is None or not obligation["active"]:
            raise IllegalState(
                "not_whistled", "该部门未被吹哨", f"{dept} was not whistled for this case"
            )
        if obligation["reported_in_at"] is not None:
            raise IllegalState(
                "already_reported_in", "该部门已报到", f"{dept} has already reported in"
            )
        if self.status == Status.DISPUTED and dept == self.lead_department:
            raise IllegalState(
                "responsibility_disputed", "责任争议待认定", "responsibility is disputed"
            )
        self.trigger_event(
            self.ReportedIn,
            timestamp=at,
            actor=actor.as_dict(),
            department=dept,
            mode=mode,
            note=note,
        )

    class HandedOff(Event):
        TOPIC = "whistleloop.case.HandedOff"
        from_department: str
        to_department: str
        reason: str
        response_deadline: datetime

        def apply(self, case: Case) -> None:
            case.obligations[self.from_department]["active"] = False
            case.obligations[self.to_department] = _obligation(
                "lead", self.timestamp, self.response_deadline
            )
            case.lead_department = self.to_department
            case.pending_handoff = {"from": self.from_department, "to": self.to_department}
            case.status = Status.WHISTLED

    def hand_off(
        self,
        actor: Actor,
        at: datetime,
        to_department: str,
        reason: str,
        *,
        item: DutyItem | None = None,
    ) -> None:
        """移交: the lead says the matter is not its own and names who it belongs to.

        The receiver answers within the case's item's response limit, as the whistled lead had to.
        """
        dept = self._require_department(actor)
        require_status(self, Status.WHISTLED, Status.IN_HANDLING)
        if dept != self.lead_department:
            raise WrongActor(
                "not_lead_department", "仅牵头部门可移交", "only the lead can hand off"
            )
        if to_department == dept:
            raise InvalidInput("hand_off_to_self", "不能移交给本部门", "cannot hand off to oneself")
        if to_department in self.obligations and self.obligations[to_department]["active"]:
            raise IllegalState(
                "already_involved", "接收部门已参与本案", f"{to_department} is already on this case"
            )
        require_text("reason", reason, 2, 1000)
        self.trigger_event(
            self.HandedOff,
            timestamp=at,
            actor=actor.as_dict(),
            from_department=dept,
            to_department=to_department,
            reason=reason,
            response_deadline=at + response_limit(Urgency(self.urgency), item),
        )

    class HandOffDisputed(Event):
        TOPIC = "whistleloop.case.HandOffDisputed"
        department: str
        reason: str

        def apply(self, case: Case) -> None:
            case.status = Status.DISPUTED

    def dispute_hand_off(self, actor: Actor, at: datetime, reason: str) -> None:
        """争议: the receiving department says the hand-off was wrong; the command centre decides."""
        dept = self._require_department(actor)
        if self.pending_handoff is None or self.pending_handoff["to"] != dept:
            raise IllegalState(
                "no_hand_off_to_dispute", "无可争议的移交", "no hand-off to you is pending"
            )
        require_status(self, Status.WHISTLED)
        require_text("reason", reason, 2, 1000)
        self.trigger_event(
            self.HandOffDisputed,
            timestamp=at,
            actor=actor.as_dict(),
            department=dept,
            reason=reason,
        )

    class ResponsibilityDetermined(Event):
        TOPIC = "whistleloop.case.ResponsibilityDetermined"
        department: str
        disputed_by: str
        handed_off_by: str
        basis: str
        response_deadline: datetime

        def apply(self, case: Case) -> None:
            for dept in (self.disputed_by, self.handed_off_by):
                case.obligations[dept]["active"] = dept == self.department
            if self.department not in case.obligations:
                case.obligations[self.department] = _obligation(
                    "lead", self.timestamp, self.response_deadline
                )
            obligation = case.obligations[self.department]
            obligation.update(active=True, role="lead")
            reported = obligation["reported_in_at"] is not None
            if not reported:
                # Its old deadline ran while it could not (or need not) report in: the clock restarts.
                obligation["response_deadline"] = self.response_deadline
            case.lead_department = self.department
            case.pending_handoff = None
            case.status = Status.IN_HANDLING if reported else Status.WHISTLED

    def determine_responsibility(
        self,
        actor: Actor,
        at: datetime,
        department: str,
        basis: str,
        *,
        item: DutyItem | None = None,
    ) -> None:
        """责任认定: the command centre settles a disputed hand-off; its word is final.

        A department new to the case answers within the case's item's response limit.
        """
        if actor.role is not Role.COMMAND_CENTRE:
            raise WrongActor(
                "command_centre_only", "仅指挥中心可认定责任", "only the command centre"
            )
        require_status(self, Status.DISPUTED)
        require_text("basis", basis, 2, 1000)
        assert self.pending_handoff is not None
        self.trigger_event(
            self.ResponsibilityDetermined,
            timestamp=at,
            actor=actor.as_dict(),
            department=department,
            disputed_by=self.pending_handoff["to"],
            handed_off_by=self.pending_handoff["from"],
            basis=basis,
            response_deadline=at + response_limit(Urgency(self.urgency), item),
        )

    class ConsultationHeld(Event):
        TOPIC = "whistleloop.case.ConsultationHeld"
        departments: list[str]
        plan: str

        def apply(self, case: Case) -> None:
            case.consultations += 1

    def hold_consultation(
        self, actor: Actor, at: datetime, departments: tuple[str, ...], plan: str
    ) -> None:
        """会商: several departments agree on one plan for "一件事"."""
        self._require_street(actor)
        require_status(self, Status.WHISTLED, Status.IN_HANDLING, Status.DISPUTED)
        if len(set(departments)) < 2:
            raise InvalidInput(
                "consultation_needs_two",
                "会商至少需两个部门",
                "a consultation needs two departments",
            )
        require_text("plan", plan, 2, 4000)
        self.trigger_event(
            self.ConsultationHeld,
            timestamp=at,
            actor=actor.as_dict(),
            departments=sorted(set(departments)),
            plan=plan,
        )

    class HandlingReported(Event):
        TOPIC = "whistleloop.case.HandlingReported"
        department: str
        result: str
        note: str

        def apply(self, case: Case) -> None:
            case.handling = {
                "department": self.department,
                "result": self.result,
                "at": self.timestamp,
            }
            case.status = Status.HANDLED

    def report_handling(self, actor: Actor, at: datetime, result: str, note: str = "") -> None:
        """处置反馈: the lead reports the outcome; anything short of resolved needs a reason."""
        dept = self._require_department(actor)
        if dept != self.lead_department:
            raise WrongActor(
                "not_lead_department", "仅牵头部门可反馈办理结果", "only the lead reports"
            )
        require_status(self, Status.IN_HANDLING)
        require_choice("result", result, HANDLING_RESULTS)
        if result != "resolved":
            require_text("note", note, 2, 4000)
        self.trigger_event(
            self.HandlingReported,
            timestamp=at,
            actor=actor.as_dict(),
            department=dept,
            result=result,
            note=note,
        )

    # --- street: rework, close; residents and street: rate, reopen -------------------------------

    class SentBackForRework(Event):
        TOPIC = "whistleloop.case.SentBackForRework"
        reason: str
        handling_deadline: datetime

        def apply(self, case: Case) -> None:
            case.rework_count += 1
            case.handling = None
            case.handling_deadline = self.handling_deadline
            case.status = Status.IN_HANDLING

    def send_back_for_rework(
        self,
        actor: Actor,
        at: datetime,
        reason: str,
        item: DutyItem | None,
        calendar: WorkingCalendar,
    ) -> None:
        """返工: the on-site check failed; the lead gets the item's handling limit again."""
        self._require_street(actor)
        require_status(self, Status.HANDLED)
        require_text("reason", reason, 2, 1000)
        self.trigger_event(
            self.SentBackForRework,
            timestamp=at,
            actor=actor.as_dict(),
            reason=reason,
            handling_deadline=handling_deadline(at, item, calendar),
        )

    class Closed(Event):
        TOPIC = "whistleloop.case.Closed"
        note: str

        def apply(self, case: Case) -> None:
            case.status = Status.CLOSED
            case.closed_at = self.timestamp

    def close(self, actor: Actor, at: datetime, note: str = "") -> None:
        """核查结案: the street has checked the result on site."""
        self._require_street(actor)
        if self.status not in (Status.HANDLED, Status.CLOSED, Status.REJECTED, Status.CANCELLED):
            raise IllegalState(
                "handling_not_reported",
                "未反馈办理结果，不能结案",
                "closing needs a handling report",
            )
        require_status(self, Status.HANDLED)  # already closed, rejected or cancelled
        self.trigger_event(self.Closed, timestamp=at, actor=actor.as_dict(), note=note)

    class Rated(Event):
        TOPIC = "whistleloop.case.Rated"
        satisfaction: str | None
        solved: bool | None
        department_scores: dict[str, int] | None
        comment: str

        def apply(self, case: Case) -> None:
            if self.department_scores is None:
                case.resident_rating = {"satisfaction": self.satisfaction, "solved": self.solved}
            else:
                case.street_scores = dict(self.department_scores)

    def rate_by_resident(
        self, actor: Actor, at: datetime, satisfaction: str, solved: bool, comment: str = ""
    ) -> None:
        """评价: 满意 / 基本满意 / 不满意, and whether the problem was solved."""
        if actor.role is not Role.RESIDENT:
            raise WrongActor(
                "resident_only", "仅居民可作满意度评价", "only residents rate satisfaction"
            )
        self._require_rateable()
        if self.resident_rating is not None:
            raise IllegalState(
                "already_rated", "居民已评价", "the resident has already rated this case"
            )
        require_choice("satisfaction", satisfaction, SATISFACTION)
        self.trigger_event(
            self.Rated,
            timestamp=at,
            actor=actor.as_dict(),
            satisfaction=satisfaction,
            solved=bool(solved),
            department_scores=None,
            comment=comment,
        )

    def rate_by_street(
        self, actor: Actor, at: datetime, scores: dict[str, int], comment: str = ""
    ) -> None:
        """街乡评价部门: 0–100 per department that worked the case (the two-way assessment)."""
        if actor.role is not Role.STREET or actor.id != self.street:
            raise WrongActor(
                "own_street_only", "仅本街乡可评价部门", "only the case's street rates"
            )
        self._require_rateable()
        if self.street_scores is not None:
            raise IllegalState(
                "already_rated", "街乡已评价", "the street has already rated this case"
            )
        if not scores or set(scores) - set(self.obligations):
            raise InvalidInput(
                "score_unknown_department",
                "只能评价参与本案的部门",
                "rate only departments on the case",
            )
        if any(
            not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= 100
            for s in scores.values()
        ):
            raise InvalidInput(
                "score_out_of_range", "评分须为 0–100 的整数", "scores are integers 0–100"
            )
        self.trigger_event(
            self.Rated,
            timestamp=at,
            actor=actor.as_dict(),
            satisfaction=None,
            solved=None,
            department_scores=dict(sorted(scores.items())),
            comment=comment,
        )

    class Reopened(Event):
        TOPIC = "whistleloop.case.Reopened"
        reason: str
        handling_deadline: datetime

        def apply(self, case: Case) -> None:
            case.round += 1
            case.handling = None
            case.resident_rating = None
            case.street_scores = None
            case.closed_at = None
            case.handling_deadline = self.handling_deadline
            case.status = Status.IN_HANDLING

    def reopen(
        self,
        actor: Actor,
        at: datetime,
        reason: str,
        item: DutyItem | None,
        calendar: WorkingCalendar,
    ) -> None:
        """重启: an unsatisfied resident, the street or the command centre sends a closed case back."""
        require_status(self, Status.CLOSED)
        if actor.role is Role.RESIDENT:
            rating = self.resident_rating
            if rating is None or rating["satisfaction"] != "unsatisfied":
                raise IllegalState(
                    "reopen_needs_unsatisfied_rating",
                    "居民仅在评价不满意后可要求重启",
                    "a resident reopens only after an unsatisfied rating",
                )
        else:
            self._require_street(actor)
        require_text("reason", reason, 2, 1000)
        self.trigger_event(
            self.Reopened,
            timestamp=at,
            actor=actor.as_dict(),
            reason=reason,
            handling_deadline=handling_deadline(at, item, calendar),
        )

    # --- oversight: deadlines, supervision, escalation, cancellation -----------------------------

    class DeadlineMissed(Event):
        TOPIC = "whistleloop.case.DeadlineMissed"
        department: str
        obligation: str
        deadline: datetime

        def apply(self, case: Case) -> None:
            case.missed.append(f"{self.obligation}:{self.department}:{self.deadline.isoformat()}")

    def record_deadline_missed(
        self, actor: Actor, at: datetime, department: str, obligation: str
    ) -> None:
        """超期: recorded once per obligation and deadline, so two clocks cannot double-count."""
        _require_oversight(actor, Role.SYSTEM, Role.COMMAND_CENTRE)
        deadline = self.due(department, obligation)
        if deadline is None or at <= deadline:
            raise IllegalState(
                "not_overdue", "该事项未超期", f"{obligation} of {department} is not overdue"
            )
        if f"{obligation}:{department}:{deadline.isoformat()}" in self.missed:
            raise IllegalState("already_recorded", "超期已记录", "this missed deadline is recorded")
        self.trigger_event(
            self.DeadlineMissed,
            timestamp=at,
            actor=actor.as_dict(),
            department=department,
            obligation=obligation,
            deadline=deadline,
        )

    class SupervisionIssued(Event):
        TOPIC = "whistleloop.case.SupervisionIssued"
        colour: str
        department: str
        obligation: str | None
        reason: str

        def apply(self, case: Case) -> None:
            case.supervisions.append(
                case.supervision_key(self.colour, self.department, self.obligation)
            )

    def issue_supervision(
        self,
        actor: Actor,
        at: datetime,
        colour: str,
        department: str,
        obligation: str | None,
        reason: str,
    ) -> None:
        """督办 in red, yellow or white; one of each colour per department and deadline."""
        _require_oversight(actor, Role.SYSTEM, Role.COMMAND_CENTRE, Role.INSPECTOR)
        require_status(self, *OPEN_STATUSES)
        require_choice("colour", colour, SUPERVISION_COLOURS)
        if department not in self.obligations:
            raise InvalidInput(
                "department_not_on_case", "该部门未参与本案", f"{department} is not on the case"
            )
        if obligation is not None:
            require_choice("obligation", obligation, ("response", "handling"))
        require_text("reason", reason, 2, 1000)
        if self._warns_of_nothing(actor, colour, department, obligation):
            raise IllegalState(
                "not_due", "该事项当前无期限可督办", f"{obligation} of {department} is not due"
            )
        if self.supervision_key(colour, department, obligation) in self.supervisions:
            raise IllegalState(
                "already_supervised", "已督办", "this supervision was already issued"
            )
        self.trigger_event(
            self.SupervisionIssued,
            timestamp=at,
            actor=actor.as_dict(),
            colour=colour,
            department=department,
            obligation=obligation,
            reason=reason,
        )

    def _warns_of_nothing(
        self, actor: Actor, colour: str, department: str, obligation: str | None
    ) -> bool:
        """An automatic white warning about a deadline that is no longer running (met or paused).

        The SLA clock reads a read model that may lag: it must not warn a department that has done
        its part. People (inspector, command centre) supervise on their own judgement, and yellow
        and red follow a recorded miss, which stays a miss after the department answers.
        """
        return (
            actor.role is Role.SYSTEM
            and colour == "white"
            and obligation is not None
            and self.due(department, obligation) is None
        )

    def supervision_key(self, colour: str, department: str, obligation: str | None) -> str:
        due = self.due(department, obligation) if obligation else None
        return f"{colour}:{department}:{obligation}:{due.isoformat() if due else ''}"

    class EscalatedToDistrict(Event):
        TOPIC = "whistleloop.case.EscalatedToDistrict"
        department: str
        reason: str

        def apply(self, case: Case) -> None:
            case.escalated.append(case.escalation_key(self.department))

    def escalate_to_district(
        self, actor: Actor, at: datetime, department: str, reason: str
    ) -> None:
        """上报区级: a department that does not report in goes to the district, once per whistle."""
        if actor.role is not Role.STREET:
            _require_oversight(actor, Role.SYSTEM, Role.COMMAND_CENTRE)
        else:
            self._require_street(actor)
        require_status(self, *OPEN_STATUSES)
        obligation = self.obligations.get(department)
        if obligation is None or not obligation["active"]:
            raise InvalidInput(
                "department_not_on_case", "该部门未参与本案", f"{department} is not on the case"
            )
        if obligation["reported_in_at"] is not None:
            raise IllegalState(
                "already_reported_in", "该部门已报到", f"{department} has reported in"
            )
        if self.escalation_key(department) in self.escalated:
            raise IllegalState(
                "already_escalated", "已上报区级", "already escalated to the district"
            )
        require_text("reason", reason, 2, 1000)
        self.trigger_event(
            self.EscalatedToDistrict,
            timestamp=at,
            actor=actor.as_dict(),
            department=department,
            reason=reason,
        )

    def escalation_key(self, department: str) -> str:
        return f"{department}:{self.obligations[department]['response_deadline'].isoformat()}"

    class CaseCancelled(Event):
        TOPIC = "whistleloop.case.CaseCancelled"
        reason: str

        def apply(self, case: Case) -> None:
            case.status = Status.CANCELLED

    def cancel(self, actor: Actor, at: datetime, reason: str) -> None:
        """撤销: withdrawn before closure (reported in error, resolved by itself)."""
        self._require_street(actor)
        require_status(self, Status.REPORTED, Status.ACCEPTED, *OPEN_STATUSES)
        require_text("reason", reason, 2, 1000)
        self.trigger_event(self.CaseCancelled, timestamp=at, actor=actor.as_dict(), reason=reason)

    # --- queries on the state -----------------------------------------------------------------

    def due(self, department: str, obligation: str | None) -> datetime | None:
        """The open deadline of a department's response or handling obligation, if there is one."""
        duty = self.obligations.get(department)
        if duty is None or not duty["active"] or Status(self.status) not in OPEN_STATUSES:
            return None
        if obligation == "response":
            if duty["reported_in_at"] or self._awaits_determination(department):
                return None
            deadline: datetime = duty["response_deadline"]
            return deadline
        if (
            obligation == "handling"
            and department == self.lead_department
            and self.handling is None
        ):
            return self.handling_deadline
        return None

    def _awaits_determination(self, department: str) -> bool:
        """A department disputing a hand-off may not report in: its response clock is paused."""
        handoff = self.pending_handoff
        return (
            self.status == Status.DISPUTED and handoff is not None and handoff["to"] == department
        )

    def _require_street(self, actor: Actor) -> None:
        """The case's own street, or the command centre acting for the district."""
        if actor.role is Role.COMMAND_CENTRE:
            return
        if actor.role is not Role.STREET:
            raise WrongActor(
                "street_only", "仅街乡或指挥中心可执行", "only the street or command centre"
            )
        if actor.id != self.street:
            raise WrongActor(
                "other_street", "不是本街乡的案件", f"the case belongs to {self.street}"
            )

    def _require_department(self, actor: Actor) -> str:
        if actor.role is not Role.DEPARTMENT:
            raise WrongActor("department_only", "仅职能部门可执行", "only a department can do this")
        return actor.id

    def _require_rateable(self) -> None:
        if self.status != Status.CLOSED:
            raise IllegalState(
                "case_not_closed", "案件未结案，不能评价", "only a closed case is rated"
            )

    def public_state(self) -> Json:
        """The case as plain values, for queries and time travel."""
        state: Json = {
            k: v
            for k, v in self.__dict__.items()
            if not k.startswith("_") and k not in _PRIVATE_STATE
        }
        state.update(
            id=str(self.id),
            version=self.version,
            reported_at=self.created_on,
            modified_at=self.modified_on,
            status=Status(self.status).value,
            stage=self.stage,
        )
        return state


_PRIVATE_STATE = frozenset({"missed", "supervisions", "escalated"})


def _obligation(role: str, whistled_at: datetime, response_deadline: datetime) -> Json:
    return {
        "role": role,
        "whistled_at": whistled_at,
        "response_deadline": response_deadline,
        "reported_in_at": None,
        "mode": None,
        "active": True,
    }


def _require_oversight(actor: Actor, *roles: Role) -> None:
    if actor.role not in roles:
        raise illegal_actor(actor)


def illegal_actor(actor: Actor) -> WrongActor:
    return WrongActor("actor_not_allowed", "该角色无权执行此操作", f"{actor.role} may not do this")


#: The name of every event type of a case (the last part of its topic), CaseReported first.
CASE_EVENT_TYPES: tuple[str, ...] = tuple(
    topic.rsplit(".", 1)[-1]
    for value in vars(Case).values()
    if isinstance(value, type) and isinstance(topic := getattr(value, "TOPIC", None), str)
)

__all__ = ["CASE_EVENT_TYPES", "CASE_NAMESPACE", "Case", "Status"]
