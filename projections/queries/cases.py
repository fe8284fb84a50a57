"""The case list (validated filters, keyset cursors), one case, its history."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Row,
    and_,
    or_,
    select,
    true,
)

from domain.case_rules import CLOSED_LOOP_STAGE, SOURCES, Status
from domain.deadlines import Urgency
from domain.errors import NotFound
from infra.event_codec import iso_utc
from projections.audit import audit_log as audit_log_t
from projections.case_board import case_board as case_board_t
from projections.deadlines import deadlines as deadlines_t
from projections.dept_performance import perf_obligations as perf_obligations_t
from projections.queries.common import (
    DATE_PATTERN,
    Db,
    Json,
    check_now,
    day_start_utc,
    fetch_rows,
    invalid,
    reference_data,
)

# --- the case list ---------------------------------------------------------------------------

MAX_LIMIT = 200
_ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
STAGES = tuple(sorted(set(CLOSED_LOOP_STAGE.values())))
_LIST_HIDDEN = ("obligations",)


@dataclass(frozen=True)
class CaseFilters:
    """What the case list may be narrowed by; None means "any"."""

    status: str | None = None
    stage: str | None = None
    street: str | None = None
    community: str | None = None
    department: str | None = None  # lead or an active assisting department
    involved: str | None = None  # any department that is or was on the case
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
        raise invalid(
            f"invalid_{name}",
            f"{name} 取值无效：{value!r}",
            f"{name} must be one of {', '.join(allowed)}",
            name,
        )


def _known(name: str, value: str | None, known: Mapping[str, object]) -> None:
    if value is not None and value not in known:
        raise invalid(
            f"unknown_{name}", f"未知{name}：{value!r}", f"unknown {name}: {value!r}", name
        )


def _filter_day(name: str, value: str | None) -> date | None:
    if value is None:
        return None
    if not DATE_PATTERN.match(value):
        raise invalid(f"invalid_{name}", f"{name} 须为 YYYY-MM-DD", f"{name} is YYYY-MM-DD", name)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid(
            f"invalid_{name}", f"{name} 不是有效日期", f"{name} is not a date", name
        ) from None


def validate_filters(filters: CaseFilters) -> tuple[date | None, date | None]:
    """Checks every filter value; returns the reported-from/to days."""
    ref = reference_data()
    _choice("status", filters.status, [s.value for s in Status])
    _choice("stage", filters.stage, STAGES)
    _choice("urgency", filters.urgency, [u.value for u in Urgency])
    _choice("source", filters.source, SOURCES)
    _known("street", filters.street, ref.streets)
    _known("community", filters.community, ref.communities)
    _known("department", filters.department, ref.departments)
    _known("involved", filters.involved, ref.departments)
    if filters.duty_item is not None and not _CODE.match(filters.duty_item):
        raise invalid("invalid_duty_item", "事项编码无效", "invalid duty item code", "duty_item")
    if filters.overdue is not None and not isinstance(filters.overdue, bool):
        raise invalid(
            "invalid_overdue", "overdue 须为布尔值", "overdue is true or false", "overdue"
        )
    if filters.text is not None and not 1 <= len(filters.text) <= 100:
        raise invalid("invalid_text", "搜索词须为 1–100 字", "text is 1–100 characters", "text")
    start = _filter_day("reported_from", filters.reported_from)
    end = _filter_day("reported_to", filters.reported_to)
    if start and end and end < start:
        raise invalid(
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
    bad = invalid("invalid_cursor", "分页游标无效", "the page cursor is invalid", "cursor")
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
        raise invalid(
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
    rows = fetch_rows(db, query)
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
    if filters.involved is not None:
        ever = select(perf_obligations_t.c.case_id).where(
            perf_obligations_t.c.department == filters.involved
        )
        conditions.append(c.case_id.in_(ever))
    if filters.overdue is not None:
        moment = check_now(now) if now is not None else iso_utc(datetime.now(UTC))
        deadlines = deadlines_t
        late = select(deadlines.c.case_id).where(deadlines.c.due_at < moment)
        conditions.append(c.case_id.in_(late) if filters.overdue else c.case_id.not_in(late))
    return conditions


# --- one case --------------------------------------------------------------------------------


def _check_case_id(case_id: object) -> str:
    if not isinstance(case_id, str) or not _CODE.match(case_id):
        raise invalid("invalid_case_id", "案件编号无效", "invalid case id", "case_id")
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
    found = fetch_rows(db, select(board).where(board.c.case_id == case_id))
    if not found:
        raise _case_not_found(case_id)
    open_deadlines = fetch_rows(
        db,
        select(deadlines)
        .where(deadlines.c.case_id == case_id)
        .order_by(deadlines.c.due_at, deadlines.c.department, deadlines.c.obligation),
    )
    duties = fetch_rows(
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
    rows = fetch_rows(db, select(log).where(log.c.aggregate_id == case_id).order_by(log.c.version))
    if not rows:
        board = case_board_t
        if not fetch_rows(db, select(board.c.case_id).where(board.c.case_id == case_id)):
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
