"""`linkage`: the street × department × community picture of the closed loop, live.

Tables:

- `linkage_cells`, one row per (street, department, community) (`''` when the case has no
  community): `open_cases`, `closed_cases`, `responded` and `response_seconds` (a sum; mean response
  = response_seconds ÷ responded).
- `linkage_members`, one row per (case, department) the case ever obligated: whether the department
  is active on it now, whether it is counted in its cell's `open_cases`, and when its current
  obligation began (the aggregate's `whistled_at`, for response times).
- `linkage_cases`, one row per case: street, community, where it is in the loop (`pending` before the
  whistle, `open`, `closed`, `ended` when rejected or cancelled) and the last version folded in.

Counting rules:

- `open_cases` counts the open cases (whistled, not closed, cancelled or rejected) with the department
  actively on them: the whistle adds the lead and each assisting department; a hand-off moves the
  case from the sender's cell to the receiver's; a determination keeps only the department it names
  of the two parties to the dispute (and adds it if it is new to the case).
- `closed_cases` counts the closed cases, under each department active at the closing. A reopen moves
  the case back from closed to open in those cells; a cancellation or rejection takes it out of open
  without counting it as closed.
- `responded` +1 and `response_seconds` += report-in − start at each report-in, in the cell of the
  department that reported in.
- Overdue is not stored: it depends on the clock, so queries count it from the `deadlines` table.

Writes are buffered per batch (`begin_batch` / `end_batch`) like `dept_performance`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    String,
    Table,
)

from infra.event_codec import EventEnvelope
from projections.rollup import CaseRollup, Deltas, load_case_rows, seconds_between, upsert_rows
from projections.views_db import TIME, metadata

NAME = "linkage"

Row = dict[str, Any]

CELL_KEYS = ("street", "department", "community")
PENDING, OPEN, CLOSED, ENDED = "pending", "open", "closed", "ended"

linkage_cells = Table(
    "linkage_cells",
    metadata,
    Column("street", String(64), primary_key=True),
    Column("department", String(64), primary_key=True),
    Column("community", String(64), primary_key=True),
    Column("open_cases", BigInteger, nullable=False, default=0, server_default="0"),
    Column("closed_cases", BigInteger, nullable=False, default=0, server_default="0"),
    Column("responded", BigInteger, nullable=False, default=0, server_default="0"),
    Column("response_seconds", Float, nullable=False, default=0, server_default="0"),
    Index("ix_linkage_cells_department", "department"),
)

linkage_members = Table(
    "linkage_members",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("department", String(64), primary_key=True),
    Column("street", String(64), nullable=False),
    Column("community", String(64), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("counted_open", Boolean, nullable=False),
    #: When the department's current obligation began (response time = report-in − this).
    Column("started_at", TIME, nullable=False),
)

linkage_cases = Table(
    "linkage_cases",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("street", String(64), nullable=False),
    Column("community", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # pending | open | closed | ended
    Column("version", Integer, nullable=False),
)


@dataclass
class CaseState:
    """A case's `linkage_cases` row and its `linkage_members` rows by department."""

    case: Row
    members: dict[str, Row]


def load_case(conn: Connection, case_id: str) -> CaseState | None:
    found = load_case_rows(conn, linkage_cases, linkage_members, case_id)
    return CaseState(*found) if found else None


def reported_state(envelope: EventEnvelope) -> CaseState:
    p = envelope.payload
    case = {
        "case_id": envelope.aggregate_id,
        "street": p["street"],
        "community": p.get("community") or "",
        "state": PENDING,
        "version": envelope.version,
    }
    return CaseState(case, {})


# --- the fold: pure, in memory --------------------------------------------------------------------


@dataclass
class _Step:
    state: CaseState
    envelope: EventEnvelope
    deltas: Deltas

    @property
    def p(self) -> dict[str, Any]:
        return self.envelope.payload

    def add(self, department: str, column: str, amount: float = 1) -> None:
        case = self.state.case
        self.deltas.add((case["street"], department, case["community"]), column, amount)

    def join(self, department: str) -> None:
        """The department's obligation (re)starts now and it is active on the case."""
        case = self.state.case
        member = self.state.members.setdefault(
            department,
            {
                "case_id": case["case_id"],
                "department": department,
                "street": case["street"],
                "community": case["community"],
                "active": True,
                "counted_open": False,
                "started_at": self.envelope.timestamp,
            },
        )
        member["started_at"] = self.envelope.timestamp
        self.set_active(department, True)

    def set_active(self, department: str, active: bool) -> None:
        member = self.state.members[department]
        member["active"] = active
        self.sync(member)

    def sync(self, member: Row) -> None:
        """Counts the member in its cell's open cases exactly when it is active on an open case."""
        wanted = member["active"] and self.state.case["state"] == OPEN
        if wanted != member["counted_open"]:
            member["counted_open"] = wanted
            self.add(member["department"], "open_cases", 1 if wanted else -1)


def fold(state: CaseState, envelope: EventEnvelope, deltas: Deltas) -> bool:
    """Folds one event of the case into `state` and `deltas` (False for an unknown event type)."""
    handler = _HANDLERS.get(envelope.event_type)
    if handler is None:
        return False
    if envelope.version <= state.case["version"]:
        return True  # already folded in
    handler(_Step(state, envelope, deltas))
    state.case["version"] = envelope.version
    return True


def _nothing(step: _Step) -> None:
    """An event that changes no cell."""


def _whistled(step: _Step) -> None:
    step.state.case["state"] = OPEN
    for department in [step.p["lead_department"], *step.p["assisting_departments"]]:
        step.join(department)


def _reported_in(step: _Step) -> None:
    member = step.state.members[step.p["department"]]
    step.add(member["department"], "responded")
    seconds = seconds_between(member["started_at"], step.envelope.timestamp)
    step.add(member["department"], "response_seconds", seconds)


def _handed_off(step: _Step) -> None:
    step.set_active(step.p["from_department"], False)
    step.join(step.p["to_department"])


def _determined(step: _Step) -> None:
    p, department = step.p, step.p["department"]
    for party in (p["disputed_by"], p["handed_off_by"]):
        step.set_active(party, party == department)
    if department not in step.state.members:
        step.join(department)
    else:
        step.set_active(department, True)


def _closed(step: _Step) -> None:
    step.state.case["state"] = CLOSED
    for member in step.state.members.values():
        if member["counted_open"]:
            step.sync(member)  # out of open …
            step.add(member["department"], "closed_cases")  # … into closed


def _reopened(step: _Step) -> None:
    step.state.case["state"] = OPEN
    for member in step.state.members.values():
        if member["active"]:  # the departments counted as closed at the closing
            step.add(member["department"], "closed_cases", -1)
            step.sync(member)


def _ended(step: _Step) -> None:
    """Rejected or cancelled: out of open, never into closed."""
    step.state.case["state"] = ENDED
    for member in step.state.members.values():
        step.sync(member)


_HANDLERS: dict[str, Callable[[_Step], None]] = {
    "CaseReported": _nothing,
    "CaseAccepted": _nothing,
    "CaseRejected": _ended,
    "CaseCancelled": _ended,
    "Whistled": _whistled,
    "ReportedIn": _reported_in,
    "HandedOff": _handed_off,
    "HandOffDisputed": _nothing,
    "ResponsibilityDetermined": _determined,
    "ConsultationHeld": _nothing,
    "HandlingReported": _nothing,
    "SentBackForRework": _nothing,
    "Closed": _closed,
    "Rated": _nothing,
    "Reopened": _reopened,
    "DeadlineMissed": _nothing,
    "SupervisionIssued": _nothing,
    "EscalatedToDistrict": _nothing,
}


class Linkage(CaseRollup[CaseState]):
    """The street–department–community linkage projection (see the module docstring)."""

    name = NAME
    tables = (linkage_cells, linkage_members, linkage_cases)
    event_types = frozenset(_HANDLERS)

    def __init__(self) -> None:
        super().__init__(Deltas(linkage_cells, CELL_KEYS))

    def load(self, conn: Connection, case_id: str) -> CaseState | None:
        return load_case(conn, case_id)

    def reported(self, envelope: EventEnvelope) -> CaseState:
        return reported_state(envelope)

    def fold_counting(self, state: CaseState, envelope: EventEnvelope, deltas: Deltas) -> bool:
        return fold(state, envelope, deltas)

    def write(self, conn: Connection, states: list[CaseState]) -> None:
        upsert_rows(conn, linkage_cases, [state.case for state in states])
        upsert_rows(
            conn, linkage_members, [row for state in states for row in state.members.values()]
        )
