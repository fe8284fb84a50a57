"""`deadlines`: every open response and handling deadline, the read model the SLA clock works from.

A row (`case_id`, `department`, `obligation`) exists exactly while `Case.due(department, obligation)`
(domain/case.py) gives a deadline: a response row while the department is active on an open case, has
not reported in and is not disputing a hand-off (its clock is paused until the determination); a
handling row for the lead while the case is open and handling is not reported. A new deadline
(hand-off, determination, rework, reopen) replaces the row and its flags.

To say that, the projection folds each case's events into a small state (`deadlines_cases`, JSON)
that mirrors the aggregate's `apply` methods, including its bookkeeping of missed deadlines,
supervisions and escalations by (department, deadline) key: a row's flags are read from those keys,
so a row that comes back (a reopen revives an assisting department's unanswered response) carries
the flags its deadline already earned, as the aggregate would refuse to repeat them.

Writes are buffered per batch (`rollup.CaseProjection`): a case's state is read on first touch and
kept while provably current; at the end of a batch the rows each touched case should have are
compared with the rows last written for it, and only the differences are written, with a few
`executemany` statements.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    not_,
    or_,
    select,
)

from domain.case import CASE_EVENT_TYPES
from domain.case_rules import OPEN_STATUSES, Status
from infra.event_codec import EventEnvelope, iso_utc
from infra.sla import ActionKind, SlaAction, escalate_at, white_at
from projections.rollup import CaseProjection, upsert_rows
from projections.views_db import TIME, metadata

NAME = "deadlines"
RESPONSE, HANDLING = "response", "handling"

State = dict[str, Any]
Row = dict[str, Any]
Key = tuple[str, str, str]  # (case_id, department, obligation)

_OPEN = frozenset(s.value for s in OPEN_STATUSES)

deadlines = Table(
    NAME,
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("department", String(64), primary_key=True),
    Column("obligation", String(16), primary_key=True),
    Column("street", String(64), nullable=False),
    Column("community", String(64), nullable=False),
    Column("duty_item", String(32), nullable=False),
    Column("urgency", String(16), nullable=False),
    Column("started_at", TIME, nullable=False),
    Column("due_at", TIME, nullable=False),
    Column("white_at", TIME, nullable=False),
    Column("escalate_at", TIME),
    Column("white_issued", Boolean, nullable=False),
    Column("missed_recorded", Boolean, nullable=False),
    Column("yellow_issued", Boolean, nullable=False),
    Column("red_issued", Boolean, nullable=False),
    Column("escalated", Boolean, nullable=False),
    Index("ix_deadlines_white_at", "white_at"),
    Index("ix_deadlines_due_at", "due_at"),
    Index("ix_deadlines_escalate_at", "escalate_at"),
    Index("ix_deadlines_street_department", "street", "department"),
    Index("ix_deadlines_department", "department"),
)

#: Per case: the aggregate's state as far as deadlines need it (see `fold`).
deadlines_cases = Table(
    "deadlines_cases",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("state", JSON, nullable=False),
)


@dataclass
class CaseDeadlines:
    """A case's folded state and the `deadlines` rows last written for it (to write only changes)."""

    case_id: str
    state: State
    written: dict[Key, Row]


class Deadlines(CaseProjection[CaseDeadlines]):
    """The deadlines projection (see the module docstring)."""

    name = NAME
    tables = (deadlines, deadlines_cases)
    event_types = frozenset(CASE_EVENT_TYPES)

    def load(self, conn: Connection, case_id: str) -> CaseDeadlines | None:
        found = conn.execute(
            select(deadlines_cases.c.state).where(deadlines_cases.c.case_id == case_id)
        ).scalar_one_or_none()
        if found is None:
            return None
        state: State = dict(found)
        return CaseDeadlines(case_id, state, open_rows(case_id, state))

    def reported(self, envelope: EventEnvelope) -> CaseDeadlines:
        return CaseDeadlines(envelope.aggregate_id, reported_state(envelope), {})

    def fold(self, case: CaseDeadlines, envelope: EventEnvelope) -> bool:
        if envelope.version > case.state["version"]:  # else a replay: never rewind
            fold(case.state, envelope)
        return True

    def write(self, conn: Connection, cases: list[CaseDeadlines]) -> None:
        """Stores the touched states and the differences between the rows written and now."""
        states = [
            {"case_id": c.case_id, "version": c.state["version"], "state": c.state} for c in cases
        ]
        upsert_rows(conn, deadlines_cases, states)
        gone: list[Key] = []
        fresh: list[Row] = []
        for case in cases:
            now = open_rows(case.case_id, case.state)
            gone += [key for key, row in case.written.items() if now.get(key) != row]
            fresh += [row for key, row in now.items() if case.written.get(key) != row]
            case.written = now
        if gone:
            conn.execute(
                _DELETE_ROW, [{"k_case": k[0], "k_dept": k[1], "k_obl": k[2]} for k in gone]
            )
        if fresh:
            conn.execute(insert(deadlines), fresh)


_DELETE_ROW = delete(deadlines).where(
    and_(
        deadlines.c.case_id == bindparam("k_case"),
        deadlines.c.department == bindparam("k_dept"),
        deadlines.c.obligation == bindparam("k_obl"),
    )
)


# --- the case state: the aggregate's `apply` methods, for deadlines ---------------------------------


def reported_state(envelope: EventEnvelope) -> State:
    p = envelope.payload
    return {
        "version": envelope.version,
        "street": p["street"],
        "community": p.get("community") or "",
        "duty_item": "",
        "urgency": "normal",
        "status": Status.REPORTED.value,
        "lead": None,
        #: {department: {active, reported, started, response_deadline}}
        "obligations": {},
        "handling_started": None,
        "handling_deadline": None,
        "handled": False,
        "pending_to": None,
        #: The aggregate's keys of missed deadlines, supervisions and escalations.
        "missed": [],
        "supervised": [],
        "escalated": [],
    }


def fold(state: State, envelope: EventEnvelope) -> None:
    """The state after one more event; events that do not bear on deadlines only bump the version."""
    handler = _HANDLERS.get(envelope.event_type)
    if handler is not None:
        handler(state, envelope.payload, envelope.timestamp)
    state["version"] = envelope.version


def _obligation(started: str, response_deadline: str) -> dict[str, Any]:
    return {
        "active": True,
        "reported": False,
        "started": started,
        "response_deadline": response_deadline,
    }


def _status(value: Status) -> Callable[[State, dict[str, Any], str], None]:
    def set_status(state: State, p: dict[str, Any], at: str) -> None:
        state["status"] = value.value

    return set_status


def _whistled(state: State, p: dict[str, Any], at: str) -> None:
    state.update(
        status=Status.WHISTLED.value,
        duty_item=p["duty_item"] or "",
        urgency=p["urgency"],
        lead=p["lead_department"],
        handling_started=at,
        handling_deadline=p["handling_deadline"],
    )
    for dept in [p["lead_department"], *p["assisting_departments"]]:
        state["obligations"][dept] = _obligation(at, p["response_deadline"])


def _reported_in(state: State, p: dict[str, Any], at: str) -> None:
    dept = p["department"]
    state["obligations"][dept]["reported"] = True
    if dept == state["lead"] and state["status"] == Status.WHISTLED:
        state["status"] = Status.IN_HANDLING.value
    if state["pending_to"] == dept:
        state["pending_to"] = None


def _handed_off(state: State, p: dict[str, Any], at: str) -> None:
    state["obligations"][p["from_department"]]["active"] = False
    state["obligations"][p["to_department"]] = _obligation(at, p["response_deadline"])
    state.update(lead=p["to_department"], pending_to=p["to_department"])
    state["status"] = Status.WHISTLED.value


def _determined(state: State, p: dict[str, Any], at: str) -> None:
    obligations = state["obligations"]
    for dept in (p["disputed_by"], p["handed_off_by"]):
        obligations[dept]["active"] = dept == p["department"]
    duty = obligations.setdefault(p["department"], _obligation(at, p["response_deadline"]))
    duty["active"] = True
    if not duty["reported"]:  # its clock restarts with the determination
        duty.update(started=at, response_deadline=p["response_deadline"])
    state.update(lead=p["department"], pending_to=None)
    state["status"] = (Status.IN_HANDLING if duty["reported"] else Status.WHISTLED).value


def _handling_reported(state: State, p: dict[str, Any], at: str) -> None:
    state.update(handled=True, status=Status.HANDLED.value)


def _new_handling_deadline(state: State, p: dict[str, Any], at: str) -> None:
    """Rework and reopen: the lead gets the item's handling limit again."""
    state.update(
        handled=False,
        handling_started=at,
        handling_deadline=p["handling_deadline"],
        status=Status.IN_HANDLING.value,
    )


def _missed(state: State, p: dict[str, Any], at: str) -> None:
    state["missed"].append(_missed_key(p["obligation"], p["department"], p["deadline"]))


def _supervised(state: State, p: dict[str, Any], at: str) -> None:
    dept, obligation = p["department"], p["obligation"]
    span = due(state, dept, obligation) if obligation else None
    key = _supervision_key(p["colour"], dept, obligation, span[1] if span else "")
    state["supervised"].append(key)


def _escalated(state: State, p: dict[str, Any], at: str) -> None:
    dept = p["department"]
    state["escalated"].append(f"{dept}:{state['obligations'][dept]['response_deadline']}")


_HANDLERS: dict[str, Callable[[State, dict[str, Any], str], None]] = {
    "CaseAccepted": _status(Status.ACCEPTED),
    "CaseRejected": _status(Status.REJECTED),
    "CaseCancelled": _status(Status.CANCELLED),
    "Closed": _status(Status.CLOSED),
    "HandOffDisputed": _status(Status.DISPUTED),
    "Whistled": _whistled,
    "ReportedIn": _reported_in,
    "HandedOff": _handed_off,
    "ResponsibilityDetermined": _determined,
    "HandlingReported": _handling_reported,
    "SentBackForRework": _new_handling_deadline,
    "Reopened": _new_handling_deadline,
    "DeadlineMissed": _missed,
    "SupervisionIssued": _supervised,
    "EscalatedToDistrict": _escalated,
}


def _missed_key(obligation: str, department: str, deadline: str) -> str:
    return f"{obligation}:{department}:{deadline}"


def _supervision_key(colour: str, department: str, obligation: str | None, due_at: str) -> str:
    return f"{colour}:{department}:{obligation}:{due_at}"


# --- which deadlines are open: Case.due() ------------------------------------------------------------


def due(state: State, department: str, obligation: str) -> tuple[str, str] | None:
    """(started, due) of the department's open deadline, exactly when `Case.due` gives one."""
    duty = state["obligations"].get(department)
    if duty is None or not duty["active"] or state["status"] not in _OPEN:
        return None
    if obligation == RESPONSE:
        paused = state["status"] == Status.DISPUTED and state["pending_to"] == department
        if duty["reported"] or paused:
            return None
        return duty["started"], duty["response_deadline"]
    if obligation == HANDLING and department == state["lead"] and not state["handled"]:
        return state["handling_started"], state["handling_deadline"]
    return None


def open_rows(case_id: str, state: State) -> dict[Key, Row]:
    """The `deadlines` rows the case should have now."""
    rows: dict[Key, Row] = {}
    for department in state["obligations"]:
        for obligation in (RESPONSE, HANDLING):
            span = due(state, department, obligation)
            if span is not None:
                rows[(case_id, department, obligation)] = _row(
                    case_id, state, department, obligation, *span
                )
    return rows


def _row(
    case_id: str, state: State, department: str, obligation: str, started: str, due_at: str
) -> Row:
    start, limit = datetime.fromisoformat(started), datetime.fromisoformat(due_at)
    response = obligation == RESPONSE

    def supervised(colour: str) -> bool:
        return _supervision_key(colour, department, obligation, due_at) in state["supervised"]

    return {
        "case_id": case_id,
        "department": department,
        "obligation": obligation,
        "street": state["street"],
        "community": state["community"],
        "duty_item": state["duty_item"],
        "urgency": state["urgency"],
        "started_at": started,
        "due_at": due_at,
        "white_at": iso_utc(white_at(start, limit)),
        "escalate_at": iso_utc(escalate_at(start, limit)) if response else None,
        "white_issued": supervised("white"),
        "missed_recorded": _missed_key(obligation, department, due_at) in state["missed"],
        "yellow_issued": supervised("yellow"),
        "red_issued": supervised("red"),
        "escalated": response and f"{department}:{due_at}" in state["escalated"],
    }


# --- what the SLA clock reads ------------------------------------------------------------------------


def due_actions(bind: Connection | Engine, now: datetime) -> list[SlaAction]:
    """What the SLA clock should do at `now`: one indexed range query per kind of action.

    White: past 75 % and still before the limit (a late clock does not warn of a passed deadline).
    Missed: past the limit, and the miss or its supervision (yellow or red for a response, red for
    handling) not yet recorded. Escalate: a response deadline past twice its limit, not escalated.
    """
    at = iso_utc(now)
    c = deadlines.c
    #: A miss is dealt with once supervised in the colour it earns (red is never yellow's due).
    supervised = or_(c.red_issued, and_(c.obligation == RESPONSE, c.yellow_issued))
    queries = {
        ActionKind.WHITE: and_(c.white_at <= at, c.due_at > at, not_(c.white_issued)),
        ActionKind.MISSED: and_(c.due_at < at, not_(and_(c.missed_recorded, supervised))),
        ActionKind.ESCALATE: and_(c.escalate_at <= at, not_(c.escalated)),
    }
    actions: list[SlaAction] = []
    with _connection(bind) as conn:
        for kind, condition in queries.items():
            rows = conn.execute(
                select(c.case_id, c.department, c.obligation, c.due_at)
                .where(condition)
                .order_by(c.due_at, c.case_id, c.department, c.obligation)
            ).all()
            actions += [
                SlaAction(
                    kind, UUID(row.case_id), row.department, row.obligation, _time(row.due_at)
                )
                for row in rows
            ]
    return actions


class ViewsDueSource:
    """The SLA clock's `DueSource` on the read-model database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def due_actions(self, now: datetime) -> list[SlaAction]:
        return due_actions(self.engine, now)


@contextmanager
def _connection(bind: Connection | Engine) -> Iterator[Connection]:
    if isinstance(bind, Connection):
        yield bind
        return
    with bind.connect() as conn:
        yield conn


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)
