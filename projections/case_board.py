"""`case_board`: one row per case, the read model behind the case list, detail and overview counts.

Each row mirrors the Case aggregate's `apply` methods (domain/case.py), folded from the events on
WL_EVENTS: status and closed-loop stage, location, duty item, lead and assisting departments,
milestone times, deadlines, rework and reopen counts, ratings. Per-department obligations are kept in
the row (`obligations`, JSON) because later events (report-in, hand-off, determination) need them to
derive the lead's response deadline and report-in time the way the domain does.

Times are stored as the envelopes carry them: ISO-8601 UTC strings of one fixed width
(`2026-01-05T01:02:03.000000Z`), so they compare and sort as text on SQLite and PostgreSQL alike. A row
only moves forward: an event whose version is not newer than the row's is ignored, so a replay after
a crash cannot rewind a case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    Text,
    select,
)

from domain.case import CASE_EVENT_TYPES
from domain.case_rules import CLOSED_LOOP_STAGE, Status
from infra.event_codec import EventEnvelope
from projections.rollup import CaseProjection, upsert_rows
from projections.views_db import TIME, metadata

NAME = "case_board"

Row = dict[str, Any]
Payload = dict[str, Any]


case_board = Table(
    NAME,
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("street", String(64), nullable=False),
    Column("community", String(64)),
    Column("grid", String(64)),
    Column("title", Text, nullable=False),
    Column("source", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("duty_item", String(32)),
    Column("duty_list_version", Integer),
    Column("urgency", String(16), nullable=False),
    Column("lead_department", String(64)),
    Column("assisting_departments", JSON, nullable=False),
    #: {dept: {role, active, response_deadline, reported_in_at}}, as the aggregate's obligations.
    Column("obligations", JSON, nullable=False),
    Column("reported_at", TIME, nullable=False, index=True),
    Column("accepted_at", TIME),
    Column("whistled_at", TIME),
    Column("lead_reported_in_at", TIME),
    Column("handled_at", TIME),
    Column("closed_at", TIME),
    Column("response_deadline", TIME),
    Column("handling_deadline", TIME),
    Column("rework_count", Integer, nullable=False),
    Column("round", Integer, nullable=False),
    Column("resident_satisfaction", String(32)),
    Column("resident_solved", Boolean),
    Column("street_scores", JSON),
    Column("last_event_type", String(64), nullable=False),
    Column("last_notification_id", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", TIME, nullable=False),
    # The case list filters on one of these and pages newest first: each index serves both.
    *(
        Index(f"ix_case_board_{column}_reported", column, "reported_at", "case_id")
        for column in ("street", "community", "status", "stage", "lead_department", "duty_item")
    ),
)


class CaseBoard(CaseProjection[Row]):
    """The case board projection (see the module docstring)."""

    name = NAME
    tables = (case_board,)
    #: Every case event moves the row on (its version at least), handled here or not.
    event_types = frozenset(CASE_EVENT_TYPES)

    def load(self, conn: Connection, case_id: str) -> Row | None:
        found = conn.execute(select(case_board).where(case_board.c.case_id == case_id)).first()
        return dict(found._mapping) if found is not None else None

    def reported(self, envelope: EventEnvelope) -> Row:
        return reported_row(envelope)

    def fold(self, state: Row, envelope: EventEnvelope) -> bool:
        if envelope.version <= state["version"]:
            return True  # already folded in (a replay): never rewind the row
        folded = fold(state, envelope)
        state.clear()
        state.update(folded)
        return True

    def write(self, conn: Connection, states: list[Row]) -> None:
        upsert_rows(conn, case_board, states)


def reported_row(envelope: EventEnvelope) -> Row:
    """The row of a freshly reported case (收集)."""
    p = envelope.payload
    return {
        "case_id": envelope.aggregate_id,
        "street": p["street"],
        "community": p.get("community"),
        "grid": p.get("grid"),
        "title": p["title"],
        "source": p["source"],
        "status": Status.REPORTED.value,
        "stage": CLOSED_LOOP_STAGE[Status.REPORTED],
        "duty_item": None,
        "duty_list_version": None,
        "urgency": "normal",
        "lead_department": None,
        "assisting_departments": [],
        "obligations": {},
        "reported_at": envelope.timestamp,
        "accepted_at": None,
        "whistled_at": None,
        "lead_reported_in_at": None,
        "handled_at": None,
        "closed_at": None,
        "response_deadline": None,
        "handling_deadline": None,
        "rework_count": 0,
        "round": 1,
        "resident_satisfaction": None,
        "resident_solved": None,
        "street_scores": None,
        "last_event_type": envelope.event_type,
        "last_notification_id": envelope.notification_id,
        "version": envelope.version,
        "updated_at": envelope.timestamp,
    }


def fold(row: Row, envelope: EventEnvelope) -> Row:
    """The row after one more event; events that change nothing shown here only bump the version."""
    new = dict(row)
    new["obligations"] = {d: dict(o) for d, o in (row["obligations"] or {}).items()}
    handler = _HANDLERS.get(envelope.event_type)
    if handler is not None:
        handler(new, envelope.payload, envelope.timestamp)
    lead = new["lead_department"]
    duty = new["obligations"].get(lead) if lead else None
    new["response_deadline"] = duty["response_deadline"] if duty else None
    new["lead_reported_in_at"] = duty["reported_in_at"] if duty else None
    new["assisting_departments"] = [
        d for d, o in new["obligations"].items() if o["role"] == "assisting" and o["active"]
    ]
    new["stage"] = CLOSED_LOOP_STAGE[Status(new["status"])]
    new.update(
        last_event_type=envelope.event_type,
        last_notification_id=envelope.notification_id,
        version=envelope.version,
        updated_at=envelope.timestamp,
    )
    return new


def _obligation(role: str, response_deadline: str) -> dict[str, Any]:
    return {
        "role": role,
        "active": True,
        "response_deadline": response_deadline,
        "reported_in_at": None,
    }


def _accepted(row: Row, p: Payload, at: str) -> None:
    row.update(status=Status.ACCEPTED.value, accepted_at=at)


def _rejected(row: Row, p: Payload, at: str) -> None:
    row["status"] = Status.REJECTED.value


def _cancelled(row: Row, p: Payload, at: str) -> None:
    row["status"] = Status.CANCELLED.value


def _whistled(row: Row, p: Payload, at: str) -> None:
    row.update(
        status=Status.WHISTLED.value,
        duty_item=p["duty_item"],
        duty_list_version=p["duty_list_version"],
        urgency=p["urgency"],
        lead_department=p["lead_department"],
        handling_deadline=p["handling_deadline"],
        whistled_at=at,
    )
    for dept in [p["lead_department"], *p["assisting_departments"]]:
        role = "lead" if dept == p["lead_department"] else "assisting"
        row["obligations"][dept] = _obligation(role, p["response_deadline"])


def _reported_in(row: Row, p: Payload, at: str) -> None:
    row["obligations"][p["department"]]["reported_in_at"] = at
    if p["department"] == row["lead_department"] and row["status"] == Status.WHISTLED:
        row["status"] = Status.IN_HANDLING.value


def _handed_off(row: Row, p: Payload, at: str) -> None:
    row["obligations"][p["from_department"]]["active"] = False
    row["obligations"][p["to_department"]] = _obligation("lead", p["response_deadline"])
    row.update(lead_department=p["to_department"], status=Status.WHISTLED.value)


def _disputed(row: Row, p: Payload, at: str) -> None:
    row["status"] = Status.DISPUTED.value


def _determined(row: Row, p: Payload, at: str) -> None:
    obligations = row["obligations"]
    for dept in (p["disputed_by"], p["handed_off_by"]):
        obligations[dept]["active"] = dept == p["department"]
    duty = obligations.setdefault(p["department"], _obligation("lead", p["response_deadline"]))
    duty.update(active=True, role="lead")
    reported = duty["reported_in_at"] is not None
    if not reported:
        duty["response_deadline"] = p["response_deadline"]
    row["lead_department"] = p["department"]
    row["status"] = (Status.IN_HANDLING if reported else Status.WHISTLED).value


def _handling_reported(row: Row, p: Payload, at: str) -> None:
    row.update(status=Status.HANDLED.value, handled_at=at)


def _reworked(row: Row, p: Payload, at: str) -> None:
    row.update(
        rework_count=row["rework_count"] + 1,
        handled_at=None,
        handling_deadline=p["handling_deadline"],
        status=Status.IN_HANDLING.value,
    )


def _closed(row: Row, p: Payload, at: str) -> None:
    row.update(status=Status.CLOSED.value, closed_at=at)


def _rated(row: Row, p: Payload, at: str) -> None:
    if p["department_scores"] is None:
        row.update(resident_satisfaction=p["satisfaction"], resident_solved=bool(p["solved"]))
    else:
        row["street_scores"] = dict(p["department_scores"])


def _reopened(row: Row, p: Payload, at: str) -> None:
    row.update(
        round=row["round"] + 1,
        handled_at=None,
        resident_satisfaction=None,
        resident_solved=None,
        street_scores=None,
        closed_at=None,
        handling_deadline=p["handling_deadline"],
        status=Status.IN_HANDLING.value,
    )


_HANDLERS: dict[str, Callable[[Row, Payload, str], None]] = {
    "CaseAccepted": _accepted,
    "CaseRejected": _rejected,
    "CaseCancelled": _cancelled,
    "Whistled": _whistled,
    "ReportedIn": _reported_in,
    "HandedOff": _handed_off,
    "HandOffDisputed": _disputed,
    "ResponsibilityDetermined": _determined,
    "HandlingReported": _handling_reported,
    "SentBackForRework": _reworked,
    "Closed": _closed,
    "Rated": _rated,
    "Reopened": _reopened,
}
