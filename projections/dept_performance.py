"""`dept_performance`: per department × day counters, so any period's measures are sums of rows.

Tables:

- `perf_daily`, one row per (day, department, street, community, duty_item): counters, two float sums
  and the response-time histogram `rb_0`…`rb_10` (`kpi.bucket_index` of the response in hours). A
  **day** is the China date (UTC+8) of an event's time; a missing community or duty item is `''`.
- `perf_daily_by_<dimension>` for department, street, community and duty_item: the same counters
  summed per (day, dimension), written from the same batch; period queries read these.
- `perf_obligations`, one row per (case, department) obligation: when it began, its current response
  deadline, when the department reported in and whether its deadline is already counted as due.
- `perf_cases`, one row per case: location, duty item, lead, handling deadline and what of it is
  counted, the day of the latest handling report, status and the last version folded in.

Counting rules (what the queries may rely on):

- **Response counters are booked on the day the obligation began (a cohort), not the day they
  happen**, so `responded ≤ received` holds for any period. An obligation begins with the whistle
  (lead and each assisting department), a hand-off (the receiver) or a determination naming a
  department that had no obligation on the case; that event adds 1 to `received`. Its start is the
  aggregate's obligation `whistled_at`: a department determined back to a case keeps its first start.
  - `responded` +1, `response_seconds` += report-in − start, `rb_<bucket>` +1 at each report-in.
  - `response_due` +1 once per obligation and response deadline, at the report-in or at a
    `DeadlineMissed(response)`, whichever comes first; `response_on_time` +1 when the report-in is at
    or before the deadline. A determination restarts the deadline of a department that has not
    reported in (as the aggregate does), and the new deadline counts once more (a missed one stays
    missed).
- Handling counters are booked on the day of their event, for the department that reported:
  `handled` +1 per handling report; `handling_due` +1 once per handling deadline, at the first report
  or at a `DeadlineMissed(handling)`, whichever comes first; `handling_done` +1 for the first report
  under each handling deadline (a report moves the case to "handled" and only a rework or reopen,
  each with a new deadline, lets the lead report again, so every report is the first of its
  deadline), booked on the day its `handling_due` was booked, so `handling_done ≤ handling_due` for
  any period (a late report after a recorded miss counts on the miss's day);
  `handling_on_time` +1 when that report is at or before the deadline. Each rework or reopen starts a new handling deadline, even when it equals
  the last one as text (`perf_cases.handling_counted_for` is cleared).
- `sent_back` (rework) is booked for the lead on the day of the handling report it sends back, so
  `sent_back ≤ handled` for any period.
- `closed`, `closed_on_time` (closed at or before the handling deadline), `rated`, `rated_solved`,
  `satisfied`, `basically_satisfied` (residents' ratings) count for the lead on their day; a street's
  rating adds each department's 0–100 score to `street_score_sum` and 1 to `street_score_count`.
- `handoffs_out` (the sender), `disputes_lost` (the department a determination names, when it was the
  disputer or the sender), `supervision_<colour>`, `escalations` and `deadlines_missed` count for the
  department named, on their day.
- A cancellation or rejection counts nothing; what was counted before stays.

Writes are buffered per batch (`begin_batch` / `end_batch`): counters are summed in memory and the
batch written with three executemany upserts. A case's rows are read on first touch and kept across
batches while the last batch's commit is known to have landed (`rollup.CaseCache`).
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

from domain.case_rules import Status
from infra.event_codec import EventEnvelope
from projections import kpi
from projections.rollup import (
    CaseRollup,
    Deltas,
    add_deltas,
    china_day,
    load_case_rows,
    seconds_between,
    upsert_rows,
)
from projections.views_db import DAY, TIME, metadata

NAME = "dept_performance"

Row = dict[str, Any]


DAILY_KEYS = ("day", "department", "street", "community", "duty_item")
BUCKETS = tuple(f"rb_{i}" for i in range(len(kpi.RESPONSE_BUCKETS_HOURS)))
_FLOAT_SUMS = ("response_seconds", "street_score_sum")
_COUNTS = (
    *("received", "responded", *BUCKETS, "response_on_time", "response_due"),
    *("handled", "handling_on_time", "handling_due", "handling_done", "sent_back"),
    *("closed", "closed_on_time", "rated", "rated_solved", "satisfied", "basically_satisfied"),
    *("street_score_count", "handoffs_out", "disputes_lost"),
    *("supervision_white", "supervision_yellow", "supervision_red", "escalations"),
    "deadlines_missed",
)


def _counter(name: str) -> Column[Any]:
    kind = Float if name in _FLOAT_SUMS else BigInteger
    return Column(name, kind, nullable=False, default=0, server_default="0")


def _counters() -> list[Column[Any]]:
    """Every counter column, in the order the tables show them."""
    return [
        *(_counter(name) for name in _COUNTS[:2]),
        _counter("response_seconds"),
        *(_counter(name) for name in _COUNTS[2:]),
        _counter("street_score_sum"),
    ]


perf_daily = Table(
    "perf_daily",
    metadata,
    Column("day", DAY, primary_key=True),
    Column("department", String(64), primary_key=True),
    Column("street", String(64), primary_key=True),
    Column("community", String(64), primary_key=True),
    Column("duty_item", String(32), primary_key=True),
    *_counters(),
    Index("ix_perf_daily_department_day", "department", "day"),
)

#: The same counters summed per day and ONE dimension, so a year's ranking or measures per street
#: read 365 × (departments | streets | …) rows, not every (street, community, item) combination.
ROLLUP_DIMENSIONS = ("department", "street", "community", "duty_item")
perf_by: dict[str, Table] = {
    dimension: Table(
        f"perf_daily_by_{dimension}",
        metadata,
        Column("day", DAY, primary_key=True),
        Column(dimension, String(64), primary_key=True),
        *_counters(),
    )
    for dimension in ROLLUP_DIMENSIONS
}

perf_obligations = Table(
    "perf_obligations",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("department", String(64), primary_key=True),
    Column("street", String(64), nullable=False),
    Column("community", String(64), nullable=False),
    Column("duty_item", String(32), nullable=False),
    Column("role", String(16), nullable=False),  # 'lead' | 'assisting'
    Column("active", Boolean, nullable=False),
    Column("started_at", TIME, nullable=False),
    Column("response_deadline", TIME, nullable=False),
    Column("reported_in_at", TIME),
    Column("response_seconds", Float),
    Column("response_counted", Boolean, nullable=False),
    Column("start_day", DAY, nullable=False),
    Index("ix_perf_obligations_department", "department", "start_day"),
)

perf_cases = Table(
    "perf_cases",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("street", String(64), nullable=False),
    Column("community", String(64), nullable=False),
    Column("duty_item", String(32), nullable=False),
    Column("lead_department", String(64)),
    Column("handling_deadline", TIME),
    #: The handling deadline already counted in `handling_due`, or '', and the day it was booked.
    Column("handling_counted_for", TIME, nullable=False),
    Column("handling_due_day", DAY),
    #: The day of the latest handling report (a rework is booked on it).
    Column("handled_day", DAY),
    Column("status", String(16), nullable=False),
    #: The last case version folded in: an older or repeated event changes nothing.
    Column("version", Integer, nullable=False),
)


@dataclass
class CaseState:
    """A case's `perf_cases` row and its `perf_obligations` rows by department."""

    case: Row
    obligations: dict[str, Row]


def load_case(conn: Connection, case_id: str) -> CaseState | None:
    found = load_case_rows(conn, perf_cases, perf_obligations, case_id)
    return CaseState(*found) if found else None


def reported_state(envelope: EventEnvelope) -> CaseState:
    """A freshly reported case: located, not yet whistled, nothing counted."""
    p = envelope.payload
    case = {
        "case_id": envelope.aggregate_id,
        "street": p["street"],
        "community": p.get("community") or "",
        "duty_item": "",
        "lead_department": None,
        "handling_deadline": None,
        "handling_counted_for": "",
        "handling_due_day": None,
        "handled_day": None,
        "status": Status.REPORTED.value,
        "version": envelope.version,
    }
    return CaseState(case, {})


# --- the fold: pure, in memory --------------------------------------------------------------------


@dataclass
class _Step:
    """One event being folded into a case's state and the batch's counters."""

    state: CaseState
    envelope: EventEnvelope
    deltas: Deltas
    day: str

    @property
    def case(self) -> Row:
        return self.state.case

    @property
    def at(self) -> str:
        return self.envelope.timestamp

    @property
    def p(self) -> dict[str, Any]:
        return self.envelope.payload

    def book(self, department: str, column: str, amount: float = 1, day: str = "") -> None:
        """Adds to a counter of `department` on `day` (the event's own day unless given)."""
        c = self.case
        key = (day or self.day, department, c["street"], c["community"], c["duty_item"])
        self.deltas.add(key, column, amount)

    def obligate(self, department: str, role: str, deadline: str) -> None:
        """A new obligation begins now: `received` +1 on this day."""
        c = self.case
        self.state.obligations[department] = {
            "case_id": c["case_id"],
            "department": department,
            "street": c["street"],
            "community": c["community"],
            "duty_item": c["duty_item"],
            "role": role,
            "active": True,
            "started_at": self.at,
            "response_deadline": deadline,
            "reported_in_at": None,
            "response_seconds": None,
            "response_counted": False,
            "start_day": self.day,
        }
        self.book(department, "received")

    def count_response_due(self, duty: Row) -> None:
        if not duty["response_counted"]:
            duty["response_counted"] = True
            self.book(duty["department"], "response_due", day=duty["start_day"])

    def count_handling_due(self, department: str, deadline: str) -> str:
        """Books `handling_due` once per deadline; returns the day it was booked on."""
        if self.case["handling_counted_for"] != deadline:
            self.case.update(handling_counted_for=deadline, handling_due_day=self.day)
            self.book(department, "handling_due")
        return str(self.case["handling_due_day"])


def fold(state: CaseState, envelope: EventEnvelope, deltas: Deltas) -> bool:
    """Folds one event of the case (not its report) into `state` and `deltas`.

    False for an event type this projection does not know; an event not newer than the state is
    already folded in (True, nothing changes).
    """
    handler = _HANDLERS.get(envelope.event_type)
    if handler is None:
        return False
    if envelope.version <= state.case["version"]:
        return True
    handler(_Step(state, envelope, deltas, china_day(envelope.timestamp)))
    state.case["version"] = envelope.version
    return True


def _nothing(step: _Step) -> None:
    """An event that changes no counter (accepted, consultation held, a repeated report)."""


def _status(status: Status) -> Callable[[_Step], None]:
    def handler(step: _Step) -> None:
        step.case["status"] = status.value

    return handler


def _whistled(step: _Step) -> None:
    p = step.p
    step.case.update(
        status=Status.WHISTLED.value,
        duty_item=p["duty_item"] or "",
        lead_department=p["lead_department"],
        handling_deadline=p["handling_deadline"],
    )
    step.obligate(p["lead_department"], "lead", p["response_deadline"])
    for department in p["assisting_departments"]:
        step.obligate(department, "assisting", p["response_deadline"])


def _reported_in(step: _Step) -> None:
    duty = step.state.obligations[step.p["department"]]
    seconds = seconds_between(duty["started_at"], step.at)
    duty.update(reported_in_at=step.at, response_seconds=seconds)
    department, cohort = duty["department"], duty["start_day"]
    step.book(department, "responded", day=cohort)
    step.book(department, "response_seconds", seconds, day=cohort)
    step.book(department, BUCKETS[kpi.bucket_index(seconds / 3600)], day=cohort)
    step.count_response_due(duty)
    if step.at <= duty["response_deadline"]:
        step.book(department, "response_on_time", day=cohort)
    if department == step.case["lead_department"] and step.case["status"] == Status.WHISTLED:
        step.case["status"] = Status.IN_HANDLING.value


def _handed_off(step: _Step) -> None:
    p = step.p
    step.state.obligations[p["from_department"]]["active"] = False
    step.book(p["from_department"], "handoffs_out")
    step.obligate(p["to_department"], "lead", p["response_deadline"])
    step.case.update(lead_department=p["to_department"], status=Status.WHISTLED.value)


def _determined(step: _Step) -> None:
    p, obligations, department = step.p, step.state.obligations, step.p["department"]
    for party in (p["disputed_by"], p["handed_off_by"]):
        obligations[party]["active"] = party == department
    if department in (p["disputed_by"], p["handed_off_by"]):
        step.book(department, "disputes_lost")
    if department not in obligations:
        step.obligate(department, "lead", p["response_deadline"])
    duty = obligations[department]
    duty.update(active=True, role="lead")
    reported = duty["reported_in_at"] is not None
    if not reported:  # the aggregate restarts its clock: a new deadline, not yet counted
        duty.update(response_deadline=p["response_deadline"], response_counted=False)
    status = Status.IN_HANDLING if reported else Status.WHISTLED
    step.case.update(lead_department=department, status=status.value)


def _handling_reported(step: _Step) -> None:
    department, deadline = step.p["department"], step.case["handling_deadline"]
    step.book(department, "handled")
    due_day = step.count_handling_due(department, deadline)
    step.book(department, "handling_done", day=due_day)  # with its `handling_due`: done ≤ due
    if step.at <= deadline:  # never after a recorded miss, so due_day is today
        step.book(department, "handling_on_time")
    step.case.update(handled_day=step.day, status=Status.HANDLED.value)


def _sent_back(step: _Step) -> None:
    step.book(step.case["lead_department"], "sent_back", day=step.case["handled_day"])
    _new_handling_deadline(step)


def _new_handling_deadline(step: _Step) -> None:
    """Rework and reopen each set a deadline to count afresh, even one equal to the last as text
    (both on the same China day give the same end of the N-th working day)."""
    step.case.update(
        handling_deadline=step.p["handling_deadline"],
        handling_counted_for="",
        handling_due_day=None,
        status=Status.IN_HANDLING.value,
    )


def _closed(step: _Step) -> None:
    lead = step.case["lead_department"]
    step.book(lead, "closed")
    if step.at <= step.case["handling_deadline"]:
        step.book(lead, "closed_on_time")
    step.case["status"] = Status.CLOSED.value


def _rated(step: _Step) -> None:
    p = step.p
    if p["department_scores"] is not None:
        for department, score in p["department_scores"].items():
            step.book(department, "street_score_sum", float(score))
            step.book(department, "street_score_count")
        return
    lead = step.case["lead_department"]
    step.book(lead, "rated")
    if p["solved"]:
        step.book(lead, "rated_solved")
    if p["satisfaction"] in ("satisfied", "basically_satisfied"):
        step.book(lead, p["satisfaction"])


def _deadline_missed(step: _Step) -> None:
    p = step.p
    step.book(p["department"], "deadlines_missed")
    if p["obligation"] == "response":
        step.count_response_due(step.state.obligations[p["department"]])
    elif p["obligation"] == "handling":
        step.count_handling_due(p["department"], p["deadline"])
    else:
        raise ValueError(f"unknown obligation {p['obligation']!r}")


def _supervised(step: _Step) -> None:
    colour = step.p["colour"]
    if colour not in ("white", "yellow", "red"):
        raise ValueError(f"unknown supervision colour {colour!r}")
    step.book(step.p["department"], f"supervision_{colour}")


def _escalated(step: _Step) -> None:
    step.book(step.p["department"], "escalations")


_HANDLERS: dict[str, Callable[[_Step], None]] = {
    "CaseReported": _nothing,
    "CaseAccepted": _nothing,
    "CaseRejected": _status(Status.REJECTED),
    "CaseCancelled": _status(Status.CANCELLED),
    "Whistled": _whistled,
    "ReportedIn": _reported_in,
    "HandedOff": _handed_off,
    "HandOffDisputed": _status(Status.DISPUTED),
    "ResponsibilityDetermined": _determined,
    "ConsultationHeld": _nothing,
    "HandlingReported": _handling_reported,
    "SentBackForRework": _sent_back,
    "Closed": _closed,
    "Rated": _rated,
    "Reopened": _new_handling_deadline,
    "DeadlineMissed": _deadline_missed,
    "SupervisionIssued": _supervised,
    "EscalatedToDistrict": _escalated,
}


class DeptPerformance(CaseRollup[CaseState]):
    """The department performance projection (see the module docstring)."""

    name = NAME
    tables = (perf_daily, *perf_by.values(), perf_obligations, perf_cases)
    event_types = frozenset(_HANDLERS)

    def __init__(self) -> None:
        super().__init__(Deltas(perf_daily, DAILY_KEYS))

    def load(self, conn: Connection, case_id: str) -> CaseState | None:
        return load_case(conn, case_id)

    def reported(self, envelope: EventEnvelope) -> CaseState:
        return reported_state(envelope)

    def fold_counting(self, state: CaseState, envelope: EventEnvelope, deltas: Deltas) -> bool:
        return fold(state, envelope, deltas)

    def end_batch(self, conn: Connection) -> None:
        for dimension, table in perf_by.items():
            add_deltas(conn, table, ("day", dimension), self._deltas.summed_by("day", dimension))
        super().end_batch(conn)

    def write(self, conn: Connection, states: list[CaseState]) -> None:
        upsert_rows(conn, perf_cases, [state.case for state in states])
        upsert_rows(
            conn, perf_obligations, [row for state in states for row in state.obligations.values()]
        )
