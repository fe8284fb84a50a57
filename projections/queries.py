"""The read side the gateway serves: case lists and details, department measures, linkage, audit.

Every function takes an `Engine` (or a `Connection`) on the read-model database plus typed arguments,
checks its input first (raising `InvalidInput` / `NotFound` with stable codes and zh/en messages) and
returns plain JSON-ready values. Queries stay cheap at district scale (~50,000 cases, ~1M events):
period measures sum `perf_daily` over a range of its leading `day` key, the case list pages by keyset
on the board's `reported_at` index, and snapshots (overdue, supervision) read `deadlines`, which only
holds open obligations.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Select,
    and_,
    case,
    distinct,
    func,
    or_,
    select,
    true,
)

from domain.case_rules import CLOSED_LOOP_STAGE, OPEN_STATUSES, SOURCES, Status
from domain.clock import CHINA_TZ
from domain.deadlines import Urgency
from domain.errors import InvalidInput, NotFound
from domain.reference import ReferenceData, load_reference
from infra.event_codec import iso_utc
from projections import audit, kpi
from projections.audit import audit_heads as audit_heads_t
from projections.audit import audit_log as audit_log_t
from projections.case_board import case_board as case_board_t
from projections.deadlines import deadlines as deadlines_t
from projections.dept_performance import perf_daily as perf_daily_t
from projections.dept_performance import perf_obligations as perf_obligations_t
from projections.linkage import linkage_cells as linkage_cells_t

Json = dict[str, Any]
Db = Engine | Connection


@cache
def _reference() -> ReferenceData:
    return load_reference()


def _invalid(code: str, zh: str, en: str, field: str, **details: object) -> InvalidInput:
    return InvalidInput(code, zh, en, field=field, **details)


def _rows(db: Db, query: Select[Any]) -> list[Row[Any]]:
    if isinstance(db, Connection):
        return list(db.execute(query).all())
    with db.connect() as conn:
        return list(conn.execute(query).all())


def _check_now(now: datetime) -> str:
    if now.tzinfo is None:
        raise _invalid("invalid_now", "时间须带时区", "now needs a time zone", "now")
    return iso_utc(now)


# --- periods ---------------------------------------------------------------------------------

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
#: The longest period a query sums over: three years of days (one leap day included).
MAX_PERIOD_DAYS = 3 * 365 + 1


def _bad_period(en: str, **details: object) -> InvalidInput:
    return _invalid(
        "invalid_period", f"统计期间无效：{en}", f"invalid period: {en}", "period", **details
    )


def _parse_day(value: object, name: str) -> date:
    if not isinstance(value, str) or not _DATE.match(value):
        raise _bad_period(f"{name} must be YYYY-MM-DD", value=repr(value))
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _bad_period(f"{name} is not a calendar date", value=value) from None


def china_day(moment: datetime) -> date:
    """The China date (UTC+8) of a moment: how every roll-up books its day."""
    return moment.astimezone(CHINA_TZ).date()


def day_start_utc(day: date) -> str:
    """00:00 China time of `day`, as the fixed-width UTC text the read models compare."""
    return iso_utc(datetime.combine(day, time(0), tzinfo=CHINA_TZ))


@dataclass(frozen=True)
class Period:
    """An inclusive range of China dates, at most three years long."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise _bad_period("end is before start", start=str(self.start), end=str(self.end))
        if (self.end - self.start).days + 1 > MAX_PERIOD_DAYS:
            raise _bad_period("longer than three years", start=str(self.start), end=str(self.end))

    @classmethod
    def parse(cls, start: str, end: str) -> Period:
        return cls(_parse_day(start, "start"), _parse_day(end, "end"))

    @classmethod
    def month(cls, month: str) -> Period:
        """`Period.month("2026-03")`: the whole calendar month."""
        found = _MONTH.match(month) if isinstance(month, str) else None
        if not found or not 1 <= int(found[2]) <= 12 or int(found[1]) < 1:
            raise _bad_period("month must be YYYY-MM", value=repr(month))
        first = date(int(found[1]), int(found[2]), 1)
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return cls(first, following - timedelta(days=1))

    @classmethod
    def day(cls, day: date) -> Period:
        return cls(day, day)

    @property
    def first_day(self) -> str:
        return self.start.isoformat()

    @property
    def last_day(self) -> str:
        return self.end.isoformat()

    def as_dict(self) -> Json:
        return {"start": self.first_day, "end": self.last_day}


# --- the case list ---------------------------------------------------------------------------

MAX_LIMIT = 200
_ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_STAGES = tuple(sorted(set(CLOSED_LOOP_STAGE.values())))
_LIST_HIDDEN = ("obligations",)


@dataclass(frozen=True)
class CaseFilters:
    """What the case list may be narrowed by; None means "any"."""

    status: str | None = None
    stage: str | None = None
    street: str | None = None
    community: str | None = None
    department: str | None = None  # lead or an active assisting department
    duty_item: str | None = None
    urgency: str | None = None
    source: str | None = None
    reported_from: str | None = None  # China date, inclusive
    reported_to: str | None = None  # China date, inclusive
    overdue: bool | None = None  # has an open obligation past its deadline now
    text: str | None = None  # the title contains it


@dataclass(frozen=True)
class Page:
    items: list[Json]
    next_cursor: str | None
    limit: int

    def as_dict(self) -> Json:
        return asdict(self)


def _choice(name: str, value: str | None, choices: Iterable[str]) -> None:
    allowed = tuple(choices)
    if value is not None and value not in allowed:
        raise _invalid(
            f"invalid_{name}",
            f"{name} 取值无效：{value!r}",
            f"{name} must be one of {', '.join(allowed)}",
            name,
        )


def _known(name: str, value: str | None, known: Mapping[str, object]) -> None:
    if value is not None and value not in known:
        raise _invalid(
            f"unknown_{name}", f"未知{name}：{value!r}", f"unknown {name}: {value!r}", name
        )


def _filter_day(name: str, value: str | None) -> date | None:
    if value is None:
        return None
    if not _DATE.match(value):
        raise _invalid(f"invalid_{name}", f"{name} 须为 YYYY-MM-DD", f"{name} is YYYY-MM-DD", name)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _invalid(
            f"invalid_{name}", f"{name} 不是有效日期", f"{name} is not a date", name
        ) from None


def validate_filters(filters: CaseFilters) -> tuple[date | None, date | None]:
    """Checks every filter value; returns the reported-from/to days."""
    ref = _reference()
    _choice("status", filters.status, [s.value for s in Status])
    _choice("stage", filters.stage, _STAGES)
    _choice("urgency", filters.urgency, [u.value for u in Urgency])
    _choice("source", filters.source, SOURCES)
    _known("street", filters.street, ref.streets)
    _known("community", filters.community, ref.communities)
    _known("department", filters.department, ref.departments)
    if filters.duty_item is not None and not _CODE.match(filters.duty_item):
        raise _invalid("invalid_duty_item", "事项编码无效", "invalid duty item code", "duty_item")
    if filters.overdue is not None and not isinstance(filters.overdue, bool):
        raise _invalid(
            "invalid_overdue", "overdue 须为布尔值", "overdue is true or false", "overdue"
        )
    if filters.text is not None and not 1 <= len(filters.text) <= 100:
        raise _invalid("invalid_text", "搜索词须为 1–100 字", "text is 1–100 characters", "text")
    start = _filter_day("reported_from", filters.reported_from)
    end = _filter_day("reported_to", filters.reported_to)
    if start and end and end < start:
        raise _invalid(
            "invalid_reported_to",
            "截止日期早于起始日期",
            "reported_to is before reported_from",
            "reported_to",
        )
    return start, end


def encode_cursor(reported_at: str, case_id: str) -> str:
    raw = json.dumps([reported_at, case_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (reported_at, case_id) a page ended at; anything else is `invalid_cursor`."""
    bad = _invalid("invalid_cursor", "分页游标无效", "the page cursor is invalid", "cursor")
    if not isinstance(cursor, str) or not 1 <= len(cursor) <= 300:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise bad from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, str) for v in value)
        or not _ISO_UTC.match(value[0])
        or not 1 <= len(value[1]) <= 64
    ):
        raise bad
    return value[0], value[1]


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise _invalid(
            "invalid_limit", f"每页条数须在 1–{MAX_LIMIT} 之间", f"limit is 1–{MAX_LIMIT}", "limit"
        )


def list_cases(
    db: Db,
    filters: CaseFilters,
    cursor: str | None,
    limit: int = 50,
    *,
    now: datetime | None = None,
) -> Page:
    """The case list, newest report first, one keyset page at a time.

    `now` (default: the machine's time) decides what is overdue; the gateway passes its clock's.
    """
    _check_limit(limit)
    start, end = validate_filters(filters)
    after = decode_cursor(cursor) if cursor is not None else None
    board = case_board_t
    query = select(board).where(*_conditions(filters, start, end, now))
    if after is not None:
        at, case_id = after
        query = query.where(
            or_(
                board.c.reported_at < at, and_(board.c.reported_at == at, board.c.case_id < case_id)
            )
        )
    query = query.order_by(board.c.reported_at.desc(), board.c.case_id.desc()).limit(limit + 1)
    rows = _rows(db, query)
    items = [
        {k: v for k, v in row._mapping.items() if k not in _LIST_HIDDEN} for row in rows[:limit]
    ]
    more = len(rows) > limit
    last = items[-1] if items and more else None
    next_cursor = encode_cursor(last["reported_at"], last["case_id"]) if last else None
    return Page(items=items, next_cursor=next_cursor, limit=limit)


def _conditions(
    filters: CaseFilters, start: date | None, end: date | None, now: datetime | None
) -> list[Any]:
    board = case_board_t
    c = board.c
    equal = {
        "status": filters.status,
        "stage": filters.stage,
        "street": filters.street,
        "community": filters.community,
        "duty_item": filters.duty_item,
        "urgency": filters.urgency,
        "source": filters.source,
    }
    conditions: list[Any] = [c[name] == value for name, value in equal.items() if value is not None]
    if start is not None:
        conditions.append(c.reported_at >= day_start_utc(start))
    if end is not None:
        conditions.append(c.reported_at < day_start_utc(end + timedelta(days=1)))
    if filters.text is not None:
        conditions.append(c.title.contains(filters.text, autoescape=True))
    if filters.department is not None:
        obligations = perf_obligations_t
        assisting = select(obligations.c.case_id).where(
            obligations.c.department == filters.department, obligations.c.active == true()
        )
        conditions.append(or_(c.lead_department == filters.department, c.case_id.in_(assisting)))
    if filters.overdue is not None:
        moment = _check_now(now) if now is not None else iso_utc(datetime.now(UTC))
        deadlines = deadlines_t
        late = select(deadlines.c.case_id).where(deadlines.c.due_at < moment)
        conditions.append(c.case_id.in_(late) if filters.overdue else c.case_id.not_in(late))
    return conditions


# --- one case --------------------------------------------------------------------------------


def _check_case_id(case_id: object) -> str:
    if not isinstance(case_id, str) or not _CODE.match(case_id):
        raise _invalid("invalid_case_id", "案件编号无效", "invalid case id", "case_id")
    return case_id


def _case_not_found(case_id: str) -> NotFound:
    return NotFound("case_not_found", "案件不存在", f"no case {case_id}", case_id=case_id)


def case_detail(db: Db, case_id: str) -> Json:
    """The board row, its open deadlines and every department's obligation on the case."""
    _check_case_id(case_id)
    board, deadlines, obligations = (
        case_board_t,
        deadlines_t,
        perf_obligations_t,
    )
    found = _rows(db, select(board).where(board.c.case_id == case_id))
    if not found:
        raise _case_not_found(case_id)
    open_deadlines = _rows(
        db,
        select(deadlines)
        .where(deadlines.c.case_id == case_id)
        .order_by(deadlines.c.due_at, deadlines.c.department, deadlines.c.obligation),
    )
    duties = _rows(
        db,
        select(obligations)
        .where(obligations.c.case_id == case_id)
        .order_by(obligations.c.started_at, obligations.c.department),
    )
    return {
        "case": dict(found[0]._mapping),
        "deadlines": [dict(r._mapping) for r in open_deadlines],
        "obligations": [dict(r._mapping) for r in duties],
    }


def case_history(db: Db, case_id: str) -> list[Json]:
    """Every event of the case from the audit log: who (and as what), what, when, and its hashes."""
    _check_case_id(case_id)
    log = audit_log_t
    rows = _rows(db, select(log).where(log.c.aggregate_id == case_id).order_by(log.c.version))
    if not rows:
        board = case_board_t
        if not _rows(db, select(board.c.case_id).where(board.c.case_id == case_id)):
            raise _case_not_found(case_id)
    return [_history_entry(row) for row in rows]


def _history_entry(row: Row[Any]) -> Json:
    m = row._mapping
    body = json.loads(m["body"])
    return {
        "leaf_index": m["leaf_index"],
        "notification_id": m["notification_id"],
        "version": m["version"],
        "event_type": m["event_type"],
        "actor": {"role": m["actor_role"], "id": m["actor_id"]},
        "timestamp": m["timestamp"],
        "payload": body.get("payload", {}),
        "leaf_hash": m["leaf_hash"],
        "chain_hash": m["chain_hash"],
    }


# --- department measures ---------------------------------------------------------------------

#: The key columns of `perf_daily`; every other column is a count or a sum.
_PERF_KEYS = ("day", "department", "street", "community", "duty_item")
_BUCKETS = tuple(f"rb_{i}" for i in range(len(kpi.RESPONSE_BUCKETS_HOURS)))


@dataclass(frozen=True)
class Snapshot:
    """Open obligations now (from `deadlines`): all of them, and the handling ones, with the overdue."""

    open: int = 0
    overdue: int = 0
    open_handling: int = 0
    overdue_handling: int = 0

    def plus(self, other: Snapshot) -> Snapshot:
        return Snapshot(
            self.open + other.open,
            self.overdue + other.overdue,
            self.open_handling + other.open_handling,
            self.overdue_handling + other.overdue_handling,
        )


def _measure_columns() -> list[Any]:
    daily = perf_daily_t
    return [c for c in daily.c if c.name not in _PERF_KEYS]


def _summed(columns: Sequence[Any]) -> list[Any]:
    return [func.coalesce(func.sum(c), 0).label(c.name) for c in columns]


def _plain_sums(mapping: Any, columns: Sequence[Any]) -> dict[str, float]:
    """Sums as Python numbers (PostgreSQL hands back Decimals)."""
    return {c.name: float(mapping[c.name] or 0) for c in columns}


def _period_sums(
    db: Db, period: Period, group: Sequence[str]
) -> dict[tuple[str, ...], dict[str, float]]:
    """Sums of every perf_daily measure over the period, per value of the `group` columns.

    The range on `day` (the primary key's first column) keeps this to the period's rows.
    """
    daily = perf_daily_t
    columns = _measure_columns()
    keys = [daily.c[name] for name in group]
    query = (
        select(*keys, *_summed(columns))
        .where(daily.c.day >= period.first_day, daily.c.day <= period.last_day)
        .group_by(*keys)
    )
    return {
        tuple(str(row._mapping[name]) for name in group): _plain_sums(row._mapping, columns)
        for row in _rows(db, query)
    }


def _snapshots(
    db: Db, now_iso: str, group: Sequence[str], **where: str
) -> dict[tuple[str, ...], Snapshot]:
    """Open and overdue obligations now, per value of the `group` columns of `deadlines`."""
    d = deadlines_t
    keys = [d.c[name] for name in group]
    handling = d.c.obligation == "handling"
    late = d.c.due_at < now_iso

    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    query = select(
        *keys,
        func.count().label("open"),
        count(late).label("overdue"),
        count(handling).label("open_handling"),
        count(and_(late, handling)).label("overdue_handling"),
    ).group_by(*keys)
    for name, value in where.items():
        query = query.where(d.c[name] == value)
    return {
        tuple(str(row._mapping[name]) for name in group): Snapshot(
            int(row.open), int(row.overdue), int(row.open_handling), int(row.overdue_handling)
        )
        for row in _rows(db, query)
    }


def _count(sums: Mapping[str, float], name: str) -> int:
    return round(sums.get(name, 0))


def measures(sums: Mapping[str, float], snapshot: Snapshot) -> Json:
    """Every measure of DOMAIN.md from summed roll-ups and the open-obligation snapshot."""
    n = {
        name: _count(sums, name)
        for name in sums
        if name not in ("response_seconds", "street_score_sum")
    }
    buckets = [n.get(b, 0) for b in _BUCKETS]
    satisfaction = kpi.satisfaction_rate(n["satisfied"], n["basically_satisfied"], n["rated"])
    street_score = kpi.mean(float(sums.get("street_score_sum", 0.0)), n["street_score_count"])
    red = n["supervision_red"]
    score = kpi.two_way_score(
        street_score, None if satisfaction is None else satisfaction * 100, None, red
    )
    handling_timeliness = kpi.handling_timeliness(n["handling_on_time"], n["handling_due"])
    disposal = kpi.disposal_rate(n["handling_done"], n["handling_due"])
    rework = kpi.rework_rate(n["sent_back"], n["handled"])
    overdue_pending = kpi.overdue_rate(snapshot.overdue_handling, snapshot.open_handling)
    composite = (
        # Nothing pending means nothing pending is overdue: that term of the composite is earned.
        kpi.composite_index(
            disposal, handling_timeliness, rework, overdue_pending or 0.0, extension=0.0
        )
        if disposal is not None and handling_timeliness is not None and rework is not None
        else None
    )
    mean_seconds = kpi.mean(float(sums.get("response_seconds", 0.0)), n["responded"])
    return {
        "counts": {
            **{k: v for k, v in n.items() if k not in _BUCKETS},
            "open_obligations": snapshot.open,
            "open_overdue": snapshot.overdue,
            "open_handling": snapshot.open_handling,
            "open_handling_overdue": snapshot.overdue_handling,
        },
        "measures": {
            "response_timeliness": kpi.response_timeliness(
                n["response_on_time"], n["response_due"]
            ),
            "mean_response_hours": None if mean_seconds is None else mean_seconds / 3600,
            "p50_response_hours": kpi.percentile_from_buckets(buckets, 0.5),
            "p90_response_hours": kpi.percentile_from_buckets(buckets, 0.9),
            "handling_timeliness": handling_timeliness,
            "overdue_rate": kpi.overdue_rate(snapshot.overdue, snapshot.open),
            "on_time_closure": kpi.on_time_closure(n["closed_on_time"], n["closed"]),
            "rework_rate": rework,
            "response_rate": kpi.response_rate(n["responded"], n["received"]),
            "resolution_rate": kpi.resolution_rate(n["rated_solved"], n["rated"]),
            "satisfaction_rate": satisfaction,
            "disposal_rate": disposal,
            "overdue_pending_rate": overdue_pending,
            "street_score": street_score,
            "two_way_score": score,
            "composite_index": composite,
        },
        "histogram": [
            {"upper_hours": None if math.isinf(bound) else bound, "count": count}
            for bound, count in zip(kpi.RESPONSE_BUCKETS_HOURS, buckets, strict=True)
        ],
        "flags": {
            "satisfaction_below_70": kpi.satisfaction_flag(satisfaction),
            "score_below_60": kpi.score_flag(score),
            "veto": red > 0,
        },
    }


def _zero_sums() -> dict[str, float]:
    return {c.name: 0.0 for c in _measure_columns()}


def _check_department(department: object) -> str:
    if not isinstance(department, str) or department not in _reference().departments:
        raise NotFound(
            "department_not_found",
            f"部门不存在：{department!r}",
            f"no department {department!r}",
            department=str(department),
        )
    return department


def _check_period(period: object) -> Period:
    if not isinstance(period, Period):
        raise _bad_period("not a Period")
    return period


def department_performance(db: Db, department: str, period: Period, now: datetime) -> Json:
    """A department's measures over a period (snapshot measures as of `now`)."""
    _check_department(department)
    _check_period(period)
    now_iso = _check_now(now)
    daily = perf_daily_t
    columns = _measure_columns()
    query = select(*_summed(columns)).where(
        daily.c.day >= period.first_day,
        daily.c.day <= period.last_day,
        daily.c.department == department,
    )
    found = _rows(db, query)
    sums = _plain_sums(found[0]._mapping, columns) if found else _zero_sums()
    snapshot = _snapshots(db, now_iso, (), department=department).get((), Snapshot())
    dept = _reference().departments[department]
    return {
        "department": department,
        "name": dept.name,
        "short_name": dept.short_name,
        "period": period.as_dict(),
        "as_of": now_iso,
        **measures(sums, snapshot),
    }


#: What a ranking may sort by, and whether a higher value is better.
RANKING_KEYS: dict[str, bool] = {
    "score": True,
    "composite_index": True,
    "response_timeliness": True,
    "handling_timeliness": True,
    "on_time_closure": True,
    "response_rate": True,
    "resolution_rate": True,
    "satisfaction_rate": True,
    "mean_response_hours": False,
    "overdue_rate": False,
    "rework_rate": False,
    "received": True,
}


def performance_ranking(db: Db, period: Period, now: datetime, by: str = "score") -> list[Json]:
    """Every department's measures, best first by `by`; departments without a value come last."""
    if by not in RANKING_KEYS:
        raise _invalid(
            "invalid_ranking",
            f"排序指标无效：{by!r}",
            f"rank by one of {', '.join(RANKING_KEYS)}",
            "by",
        )
    _check_period(period)
    now_iso = _check_now(now)
    sums = _period_sums(db, period, ("department",))
    snapshots = _snapshots(db, now_iso, ("department",))
    ref = _reference()
    entries = []
    for code, dept in ref.departments.items():
        entry = measures(sums.get((code,), _zero_sums()), snapshots.get((code,), Snapshot()))
        entries.append(
            {"department": code, "name": dept.name, "short_name": dept.short_name, **entry}
        )
    higher_better = RANKING_KEYS[by]

    def value(entry: Json) -> float | None:
        if by == "received":
            return float(entry["counts"]["received"])
        found: float | None = entry["measures"]["two_way_score" if by == "score" else by]
        return found

    def order(entry: Json) -> tuple[bool, float, str]:
        v = value(entry)
        return (v is None, 0.0 if v is None else (-v if higher_better else v), entry["department"])

    ranked = sorted(entries, key=order)
    for rank, entry in enumerate(ranked, start=1):
        entry["rank"] = rank if value(entry) is not None else None
    return ranked


DIMENSIONS = ("street", "community", "duty_item", "section")


def measures_by(db: Db, period: Period, now: datetime, dimension: str = "street") -> list[Json]:
    """The measures per street, community, duty item or duty-list section (all departments summed)."""
    if dimension not in DIMENSIONS:
        raise _invalid(
            "invalid_dimension",
            f"维度无效：{dimension!r}",
            f"dimension is one of {', '.join(DIMENSIONS)}",
            "dimension",
        )
    _check_period(period)
    now_iso = _check_now(now)
    column = "duty_item" if dimension == "section" else dimension
    sums = _period_sums(db, period, (column,))
    snapshots = _snapshots(db, now_iso, (column,))
    if dimension == "section":
        sums, snapshots = _by_section(sums, snapshots)
    keys = sorted(set(sums) | set(snapshots))
    return [
        {
            "dimension": dimension,
            "key": key[0],
            **measures(sums.get(key, _zero_sums()), snapshots.get(key, Snapshot())),
        }
        for key in keys
    ]


def _by_section(
    sums: Mapping[tuple[str, ...], dict[str, float]],
    snapshots: Mapping[tuple[str, ...], Snapshot],
) -> tuple[dict[tuple[str, ...], dict[str, float]], dict[tuple[str, ...], Snapshot]]:
    """Folds per-item rows into the item's section ('' for emergencies outside the list)."""
    items = _reference().duty_items

    def section(item: str) -> tuple[str, ...]:
        found = items.get(item)
        return (found.section.value if found else "",)

    folded: dict[tuple[str, ...], dict[str, float]] = {}
    for (item,), row in sums.items():
        target = folded.setdefault(section(item), _zero_sums())
        for name, value in row.items():
            target[name] = target.get(name, 0.0) + value
    open_now: dict[tuple[str, ...], Snapshot] = {}
    for (item,), snap in snapshots.items():
        open_now[section(item)] = open_now.get(section(item), Snapshot()).plus(snap)
    return folded, open_now


# --- linkage, overview, supervision ------------------------------------------------------------


def linkage_matrix(db: Db, now: datetime) -> list[Json]:
    """Street × department × community: open, overdue (now), closed and mean response."""
    now_iso = _check_now(now)
    cells, d = linkage_cells_t, deadlines_t
    overdue_query = (
        select(
            d.c.street, d.c.department, d.c.community, func.count(distinct(d.c.case_id)).label("n")
        )
        .where(d.c.due_at < now_iso)
        .group_by(d.c.street, d.c.department, d.c.community)
    )
    overdue = {(r.street, r.department, r.community): int(r.n) for r in _rows(db, overdue_query)}
    found: dict[tuple[str, str, str], Json] = {}
    for row in _rows(db, select(cells)):
        m = row._mapping
        seconds = kpi.mean(float(m["response_seconds"] or 0), int(m["responded"]))
        found[(m["street"], m["department"], m["community"])] = {
            "street": m["street"],
            "department": m["department"],
            "community": m["community"],
            "open": int(m["open_cases"]),
            "closed": int(m["closed_cases"]),
            "responded": int(m["responded"]),
            "mean_response_hours": None if seconds is None else seconds / 3600,
        }
    for key in overdue.keys() - found.keys():  # not yet folded by linkage (it runs apart)
        found[key] = dict(zip(("street", "department", "community"), key, strict=True)) | {
            "open": 0,
            "closed": 0,
            "responded": 0,
            "mean_response_hours": None,
        }
    for key, cell in found.items():
        cell["overdue"] = overdue.get(key, 0)
    return [found[key] for key in sorted(found)]


def overview(db: Db, now: datetime) -> Json:
    """The dashboard's headline: cases per closed-loop stage, today's flow, open and overdue now."""
    now_iso = _check_now(now)
    board, d, daily = case_board_t, deadlines_t, perf_daily_t
    today = china_day(now)
    stages = dict.fromkeys(_STAGES, 0)
    for row in _rows(db, select(board.c.stage, func.count()).group_by(board.c.stage)):
        stages[row[0]] = int(row[1])
    by_status = {s.value: 0 for s in Status}
    for row in _rows(db, select(board.c.status, func.count()).group_by(board.c.status)):
        by_status[row[0]] = int(row[1])
    reported_today = _rows(
        db,
        select(func.count()).where(
            board.c.reported_at >= day_start_utc(today),
            board.c.reported_at < day_start_utc(today + timedelta(days=1)),
        ),
    )[0][0]
    closed_today = _rows(
        db,
        select(func.coalesce(func.sum(daily.c.closed), 0)).where(daily.c.day == today.isoformat()),
    )[0][0]
    overdue = _rows(db, select(func.count(distinct(d.c.case_id))).where(d.c.due_at < now_iso))[0][0]
    return {
        "as_of": now_iso,
        "day": today.isoformat(),
        "stages": {stage: stages[stage] for stage in _STAGE_ORDER},
        "statuses": by_status,
        "reported_today": int(reported_today),
        "closed_today": int(closed_today),
        "open": sum(by_status[s.value] for s in OPEN_STATUSES),
        "overdue": int(overdue),
    }


#: 收集 → 分流 → 处置 → 反馈 → 评价, the order the funnel shows.
_STAGE_ORDER = ("collect", "dispatch", "handle", "feedback", "evaluate")

#: Most rows a supervision board lists per section (the counts are always complete).
BOARD_ROWS = 500


def supervision_board(db: Db, now: datetime) -> Json:
    """Open obligations past due, and open obligations under supervision by their highest colour."""
    now_iso = _check_now(now)
    d, board = deadlines_t, case_board_t
    base = select(
        d.c.case_id,
        d.c.department,
        d.c.obligation,
        d.c.street,
        d.c.community,
        d.c.duty_item,
        d.c.urgency,
        d.c.started_at,
        d.c.due_at,
        d.c.missed_recorded,
        d.c.escalated,
        board.c.title,
        board.c.status,
    ).join(board, board.c.case_id == d.c.case_id, isouter=True)
    order = (d.c.due_at, d.c.case_id, d.c.department, d.c.obligation)
    colours = {
        "red": d.c.red_issued == true(),
        "yellow": and_(d.c.yellow_issued == true(), d.c.red_issued != true()),
        "white": and_(
            d.c.white_issued == true(), d.c.yellow_issued != true(), d.c.red_issued != true()
        ),
    }
    result: Json = {"as_of": now_iso, "counts": {}}
    sections = {"overdue": d.c.due_at < now_iso, **colours}
    for name, condition in sections.items():
        result["counts"][name] = int(
            _rows(db, select(func.count()).select_from(d).where(condition))[0][0]
        )
        rows = _rows(db, base.where(condition).order_by(*order).limit(BOARD_ROWS))
        result[name] = [dict(r._mapping) for r in rows]
    return result


# --- audit ------------------------------------------------------------------------------------


def tree_head(db: Db) -> Json:
    """The latest signed tree head (NotFound before the first one)."""
    row = _latest_head(db)
    if row is None:
        raise _no_head()
    return {**audit.signed_head(row._mapping), "published": bool(row._mapping["published"])}


def _latest_head(db: Db, size: int | None = None) -> Row[Any] | None:
    query = select(audit_heads_t)
    if size is not None:
        query = query.where(audit_heads_t.c.tree_size == size)
    rows = _rows(db, query.order_by(audit_heads_t.c.tree_size.desc()).limit(1))
    return rows[0] if rows else None


def _no_head() -> NotFound:
    return NotFound("no_tree_head", "尚无签名树头", "no signed tree head yet")


def _check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _invalid(
            f"invalid_{name}", f"{name} 须为正整数", f"{name} is a positive integer", name
        )
    return value


def _proof(db: Db, make: Callable[[Connection], list[bytes]]) -> list[str]:
    """Runs a proof helper on one connection; a size the node store cannot cover is bad input."""
    try:
        if isinstance(db, Connection):
            return [node.hex() for node in make(db)]
        with db.connect() as conn:
            return [node.hex() for node in make(conn)]
    except (LookupError, ValueError, IndexError) as error:
        raise _invalid(
            "tree_size_unknown",
            "审计树尚未达到该规模",
            f"the audit tree cannot prove that: {error}",
            "tree_size",
        ) from None


def _current_size(db: Db) -> int:
    if isinstance(db, Connection):
        return audit.tree_size(db)
    with db.connect() as conn:
        return audit.tree_size(conn)


def inclusion_proof(db: Db, notification_id: int, tree_size: int | None = None) -> Json:
    """The audit path of one event in a tree of `tree_size` leaves (the latest signed head's by
    default), with that head's root when one was signed at that size."""
    _check_size("notification_id", notification_id)
    if tree_size is None:
        head = _latest_head(db)
        if head is None:
            raise _no_head()
        tree_size = int(head._mapping["tree_size"])
    else:
        _check_size("tree_size", tree_size)
        head = _latest_head(db, tree_size)
    leaf = _rows(
        db,
        select(audit_log_t.c.leaf_index, audit_log_t.c.leaf_hash).where(
            audit_log_t.c.notification_id == notification_id
        ),
    )
    if not leaf:
        raise NotFound(
            "event_not_audited",
            "审计日志中无此事件",
            f"no audited event {notification_id}",
            notification_id=notification_id,
        )
    index = int(leaf[0].leaf_index)
    if not index < tree_size <= _current_size(db):
        raise _invalid(
            "leaf_not_in_tree",
            "该事件不在此规模的审计树中",
            f"event {notification_id} (leaf {index}) is not in a tree of {tree_size}",
            "tree_size",
        )
    size = tree_size
    return {
        "notification_id": notification_id,
        "leaf_index": index,
        "leaf_hash": leaf[0].leaf_hash,
        "tree_size": size,
        "root_hash": head._mapping["root_hash"] if head is not None else None,
        "proof": _proof(db, lambda conn: audit.inclusion_proof(conn, index, size)),
    }


def consistency_proof(db: Db, first: int, second: int) -> Json:
    """Shows the tree of `first` leaves is a prefix of the tree of `second` leaves."""
    _check_size("first", first)
    _check_size("second", second)
    if first > second or second > _current_size(db):
        raise _invalid(
            "invalid_tree_sizes",
            "树规模须满足 0 < first ≤ second ≤ 当前规模",
            "sizes must satisfy 0 < first ≤ second ≤ the current tree size",
            "second",
        )
    roots = {}
    for size in (first, second):
        head = _latest_head(db, size)
        roots[size] = head._mapping["root_hash"] if head is not None else None
    return {
        "first": first,
        "second": second,
        "first_root": roots[first],
        "second_root": roots[second],
        "proof": _proof(db, lambda conn: audit.consistency_proof(conn, first, second)),
    }


__all__ = [
    "BOARD_ROWS",
    "DIMENSIONS",
    "MAX_LIMIT",
    "MAX_PERIOD_DAYS",
    "RANKING_KEYS",
    "CaseFilters",
    "Page",
    "Period",
    "Snapshot",
    "case_detail",
    "case_history",
    "china_day",
    "consistency_proof",
    "day_start_utc",
    "decode_cursor",
    "department_performance",
    "encode_cursor",
    "inclusion_proof",
    "linkage_matrix",
    "list_cases",
    "measures",
    "measures_by",
    "overview",
    "performance_ranking",
    "supervision_board",
    "tree_head",
    "validate_filters",
]
