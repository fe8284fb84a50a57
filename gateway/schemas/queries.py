"""Query parameters and response shapes of the read endpoints (`…Query` in, `…Public` out).

The shapes mirror what `projections.queries` returns, so a field added there must be added here too:
FastAPI serialises through these models and would silently drop an unknown key. Times are the read
models' fixed-width UTC text (`2026-03-02T01:00:00.000000Z`); China dates are `YYYY-MM-DD`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from projections.queries import MAX_LIMIT

TIME_EXAMPLE = "2026-03-02T01:00:00.000000Z"
CASE_ID_EXAMPLE = "6353ba58-389f-45d6-978c-47c55476054c"


class _Public(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- the case list -----------------------------------------------------------------------------


class CaseListQuery(BaseModel):
    """The case list's filters (`projections.queries.CaseFilters`) plus paging."""

    model_config = ConfigDict(extra="forbid")

    status: str | None = Field(None, description="Case status.", examples=["whistled"])
    stage: str | None = Field(
        None, description="Closed-loop stage (collect … evaluate).", examples=["handle"]
    )
    street: str | None = Field(
        None,
        description="Street code; a street token may only ask for its own.",
        examples=["jianwai"],
    )
    community: str | None = Field(
        None,
        description="Community code; a community token may only ask for its own.",
        examples=["jianwai_c01"],
    )
    department: str | None = Field(
        None,
        description="Lead or active assisting department; a department token may only ask for itself.",
        examples=["cgzf"],
    )
    involved: str | None = Field(
        None,
        description="Any department that is or was on the case (handed off or ended included); "
        "a department token always lists with its own code here.",
        examples=["cgzf"],
    )
    duty_item: str | None = Field(None, description="Duty-list item code.", examples=["CG-001"])
    urgency: str | None = Field(
        None, description="normal, urgent or emergency.", examples=["normal"]
    )
    source: str | None = Field(
        None, description="Where the report came from.", examples=["hotline_12345"]
    )
    reported_from: str | None = Field(
        None,
        description="China date (inclusive) the report was made on or after.",
        examples=["2026-03-01"],
    )
    reported_to: str | None = Field(
        None,
        description="China date (inclusive) the report was made on or before.",
        examples=["2026-03-31"],
    )
    overdue: bool | None = Field(
        None,
        description="Only cases with (true) or without (false) an open obligation past due now.",
    )
    text: str | None = Field(
        None, description="The title contains this (1–100 characters).", examples=["违建"]
    )
    cursor: str | None = Field(
        None, description="`next_cursor` of the previous page; omit for the first page."
    )
    limit: int = Field(50, ge=1, le=MAX_LIMIT, description=f"Page size, 1–{MAX_LIMIT}.")


class CaseSummaryPublic(_Public):
    """One row of the case board (the read model every list and detail starts from)."""

    case_id: str = Field(examples=[CASE_ID_EXAMPLE])
    street: str = Field(examples=["jianwai"])
    community: str | None = Field(examples=["jianwai_c01"])
    grid: str | None = Field(examples=["jianwai_c01_g01"])
    title: str = Field(examples=["楼顶违建"])
    source: str = Field(examples=["hotline_12345"])
    status: str = Field(examples=["whistled"])
    stage: str = Field(examples=["dispatch"])
    duty_item: str | None = Field(examples=["CG-001"])
    duty_list_version: int | None = Field(examples=[1])
    urgency: str = Field(examples=["normal"])
    lead_department: str | None = Field(examples=["cgzf"])
    assisting_departments: list[str] = Field(examples=[["zj"]])
    reported_at: str = Field(examples=[TIME_EXAMPLE])
    accepted_at: str | None
    whistled_at: str | None
    lead_reported_in_at: str | None
    handled_at: str | None
    closed_at: str | None
    response_deadline: str | None
    handling_deadline: str | None
    rework_count: int
    round: int
    resident_satisfaction: str | None
    resident_solved: bool | None
    street_scores: dict[str, int] | None
    last_event_type: str = Field(examples=["Whistled"])
    last_notification_id: int
    version: int
    updated_at: str


class CaseBoardPublic(CaseSummaryPublic):
    obligations: dict[str, dict[str, Any]] = Field(
        description="Per department: role, active, response_deadline, reported_in_at.",
        examples=[{"cgzf": {"role": "lead", "active": True, "response_deadline": TIME_EXAMPLE}}],
    )


class CasePagePublic(_Public):
    items: list[CaseSummaryPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
    limit: int


class DeadlinePublic(_Public):
    """An open obligation with its deadline and what the SLA clock has done about it."""

    case_id: str
    department: str = Field(examples=["cgzf"])
    obligation: str = Field(examples=["response"])
    street: str
    community: str
    duty_item: str
    urgency: str
    started_at: str
    due_at: str
    white_at: str
    escalate_at: str | None
    white_issued: bool
    missed_recorded: bool
    yellow_issued: bool
    red_issued: bool
    escalated: bool


class ObligationPublic(_Public):
    """A department's part in the case, as department performance counts it."""

    case_id: str
    department: str = Field(examples=["cgzf"])
    street: str
    community: str
    duty_item: str
    role: str = Field(examples=["lead"])
    active: bool
    started_at: str
    response_deadline: str
    reported_in_at: str | None
    response_seconds: float | None
    response_counted: bool
    start_day: str = Field(examples=["2026-03-02"])


class CaseDetailPublic(_Public):
    case: CaseBoardPublic
    deadlines: list[DeadlinePublic]
    obligations: list[ObligationPublic]


class CaseAsOfPublic(_Public):
    """The case as it stood at `as_of`, replayed from the event store (not from a read model)."""

    as_of: str = Field(examples=[TIME_EXAMPLE])
    version: int = Field(
        description="The last version recorded at or before `as_of`.", examples=[3]
    )
    case: dict[str, Any] = Field(
        description="The aggregate's public state then (`CaseService.case`); times are ISO-8601 UTC.",
        examples=[{"id": CASE_ID_EXAMPLE, "version": 3, "status": "whistled", "street": "jianwai"}],
    )


# --- history and proofs --------------------------------------------------------------------------


class ActorPublic(_Public):
    role: str = Field(examples=["department"])
    id: str = Field(examples=["cgzf"])


class HistoryEntryPublic(_Public):
    """One event of a case as the audit log holds it, with its Merkle leaf and hash-chain link."""

    leaf_index: int
    notification_id: int
    version: int
    event_type: str = Field(examples=["Whistled"])
    actor: ActorPublic
    timestamp: str = Field(examples=[TIME_EXAMPLE])
    payload: dict[str, Any]
    leaf_hash: str
    chain_hash: str


class TreeHeadPublic(_Public):
    """A signed tree head (RFC 9162 style): check `signature` (Ed25519) over the other four fields."""

    tree_size: int = Field(examples=[1024])
    root_hash: str = Field(description="Hex SHA-256 Merkle root.")
    timestamp: str = Field(examples=[TIME_EXAMPLE])
    key_id: str
    signature: str = Field(description="Base64 Ed25519 signature of the canonical JSON head.")
    published: bool = Field(description="Whether the head was published on NATS (WL_AUDIT).")


class EventProofPublic(_Public):
    """An event's audit path to the root of the tree head it is proved against."""

    version: int
    event_type: str
    notification_id: int
    leaf_index: int
    leaf_hash: str
    tree_size: int
    root_hash: str | None
    proof: list[str] = Field(description="Hex sibling hashes, leaf to root (RFC 9162 §2.1.3).")


class CaseProofPublic(_Public):
    case_id: str
    tree_head: TreeHeadPublic
    events: list[EventProofPublic]
    pending: list[int] = Field(
        description="Notification ids of the case's audited events the signed head does not cover yet."
    )


class EventVerificationPublic(_Public):
    """One event of a case, recomputed from the event store and compared with the audit trail."""

    version: int
    event_type: str = Field(examples=["Whistled"])
    notification_id: int
    leaf_index: int | None = Field(
        description="Its leaf in the audit tree; null if not audited yet."
    )
    leaf_hash: str | None = Field(description="The leaf hash `audit_log` records.")
    store_leaf_hash: str | None = Field(
        description="The leaf hash of the event as the store holds it now (null: gone from the store)."
    )
    chain_hash: str | None = Field(description="The case's hash-chain entry `audit_log` records.")
    store_chain_hash: str | None = Field(description="The chain entry recomputed from the store.")
    chain_ok: bool | None = Field(description="Recorded chain entry = recomputed; null if pending.")
    included: bool | Literal["pending"] = Field(
        description="The store's leaf proved against the latest signed head; `pending` if the "
        "event came after that head (or is not audited yet)."
    )
    issues: list[str] = Field(
        description="body_differs, leaf_differs, chain_broken, not_included, missing_from_audit, "
        "missing_from_store, undecodable.",
        examples=[["leaf_differs"]],
    )
    ok: bool


class CaseVerificationPublic(_Public):
    """A case's audit checked against the event store and the latest signed tree head."""

    case_id: str = Field(examples=[CASE_ID_EXAMPLE])
    ok: bool = Field(description="Every event ok and, when a head exists, its signature valid.")
    tree_size: int = Field(description="Size of the latest signed tree head; 0 before the first.")
    root_hash: str | None
    head_signature_ok: bool | None = Field(
        description="The head's Ed25519 signature; null when there is no head or no key to check."
    )
    audited_through: int = Field(description="The last notification the audit has taken in.")
    events: list[EventVerificationPublic]


class ConsistencyProofPublic(_Public):
    first: int
    second: int
    first_root: str | None = Field(description="Root of the head signed at `first`, if any.")
    second_root: str | None
    proof: list[str] = Field(description="Hex hashes (RFC 9162 §2.1.4).")


# --- live views ----------------------------------------------------------------------------------


class OverviewPublic(_Public):
    as_of: str
    day: str = Field(description="Today, China date.", examples=["2026-03-02"])
    stages: dict[str, int] = Field(examples=[{"collect": 3, "dispatch": 5, "handle": 9}])
    statuses: dict[str, int]
    reported_today: int
    closed_today: int
    open: int
    overdue: int


class LinkageCellPublic(_Public):
    street: str
    department: str
    community: str
    open: int
    closed: int
    responded: int
    mean_response_hours: float | None
    overdue: int


class SupervisionRowPublic(_Public):
    case_id: str
    department: str
    obligation: str
    street: str
    community: str
    duty_item: str
    urgency: str
    started_at: str
    due_at: str
    missed_recorded: bool
    escalated: bool
    title: str | None
    status: str | None


class SupervisionBoardPublic(_Public):
    as_of: str
    counts: dict[str, int] = Field(examples=[{"overdue": 2, "red": 0, "yellow": 1, "white": 3}])
    overdue: list[SupervisionRowPublic]
    red: list[SupervisionRowPublic]
    yellow: list[SupervisionRowPublic]
    white: list[SupervisionRowPublic]


class TrendDayPublic(_Public):
    """One China day of the trend: what happened in the closed loop that day."""

    day: str = Field(examples=["2026-03-02"])
    reported: int = Field(description="Cases reported.")
    whistled: int = Field(description="Cases whistled.")
    reported_in: int = Field(description="Cases whose lead department reported in.")
    closed: int = Field(description="Closings (a reopened case closed again counts twice).")
    rated: int = Field(description="Residents' ratings.")


class TrendPublic(_Public):
    as_of: str
    start: str = Field(description="First China date.", examples=["2026-02-24"])
    end: str = Field(description="Today, China date.", examples=["2026-03-02"])
    days: list[TrendDayPublic] = Field(description="Oldest first, one per day, today last.")


# --- measures ------------------------------------------------------------------------------------

MEASURES_EXAMPLE = {
    "response_timeliness": 0.95,
    "mean_response_hours": 3.5,
    "satisfaction_rate": 0.9,
    "two_way_score": 88.0,
}


class HistogramBinPublic(_Public):
    upper_hours: float | None = Field(description="Upper bound of the bin; null for the last (∞).")
    count: int


class _Measured(_Public):
    """The DOMAIN.md measures of one department or dimension value over a period."""

    counts: dict[str, int] = Field(
        description="Summed counts of the period plus open obligations now.",
        examples=[{"received": 12, "responded": 11, "open_obligations": 2}],
    )
    measures: dict[str, float | None] = Field(
        description="Rates in 0..1, hours, scores in 0..100; null when there is nothing to measure.",
        examples=[MEASURES_EXAMPLE],
    )
    histogram: list[HistogramBinPublic]
    flags: dict[str, bool] = Field(examples=[{"satisfaction_below_70": False, "veto": False}])


class PeriodPublic(_Public):
    start: str = Field(examples=["2026-03-01"])
    end: str = Field(examples=["2026-03-31"])


class DepartmentPerformancePublic(_Measured):
    department: str
    name: str
    short_name: str
    period: PeriodPublic
    as_of: str


class RankingEntryPublic(_Measured):
    department: str
    name: str
    short_name: str
    rank: int | None = Field(description="1 is best; null when the department has no value.")


class DimensionMeasuresPublic(_Measured):
    dimension: str = Field(examples=["street"])
    key: str = Field(examples=["jianwai"])


# --- reference data ------------------------------------------------------------------------------


class LiaisonPublic(_Public):
    name: str
    title: str
    phone: str
    mobile: str


class DepartmentPublic(_Public):
    code: str = Field(examples=["cgzf"])
    name: str
    short_name: str
    name_en: str
    liaison: LiaisonPublic


class StreetPublic(_Public):
    code: str = Field(examples=["jianwai"])
    name: str
    name_en: str
    kind: str = Field(examples=["street"])


class CommunityPublic(_Public):
    code: str = Field(examples=["jianwai_c01"])
    street: str
    name: str
    grids: list[str]


class DutyItemPublic(_Public):
    code: str = Field(examples=["CG-001"])
    section: str
    name: str
    street_role: str
    lead_department: str
    cooperating_departments: list[str]
    cooperation_mode: str
    legal_basis: str
    response_limit_hours: int
    handling_limit_working_days: int


class DutyListPublic(_Public):
    version: int = Field(description="The duty list version in force now.")
    items: list[DutyItemPublic]
