"""The live picture: linkage matrix, overview counts by closed-loop stage, supervision board."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    case,
    distinct,
    func,
    literal_column,
    select,
    true,
)

from domain.case_rules import OPEN_STATUSES, Status
from projections import kpi
from projections.case_board import case_board as case_board_t
from projections.deadlines import deadlines as deadlines_t
from projections.dept_performance import perf_by
from projections.dept_performance import perf_daily as perf_daily_t
from projections.linkage import linkage_cells as linkage_cells_t
from projections.queries.cases import STAGES
from projections.queries.common import (
    Db,
    Json,
    check_now,
    china_day,
    day_start_utc,
    fetch_rows,
    invalid,
)

# --- linkage, overview, supervision ------------------------------------------------------------


def linkage_matrix(db: Db, now: datetime) -> list[Json]:
    """Street × department × community: open, overdue (now), closed and mean response."""
    now_iso = check_now(now)
    cells, d = linkage_cells_t, deadlines_t
    overdue_query = (
        select(
            d.c.street, d.c.department, d.c.community, func.count(distinct(d.c.case_id)).label("n")
        )
        .where(d.c.due_at < now_iso)
        .group_by(d.c.street, d.c.department, d.c.community)
    )
    overdue = {
        (r.street, r.department, r.community): int(r.n) for r in fetch_rows(db, overdue_query)
    }
    found: dict[tuple[str, str, str], Json] = {}
    for row in fetch_rows(db, select(cells)):
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
    now_iso = check_now(now)
    board, d, daily = case_board_t, deadlines_t, perf_daily_t
    today = china_day(now)
    stages = dict.fromkeys(STAGES, 0)
    for row in fetch_rows(db, select(board.c.stage, func.count()).group_by(board.c.stage)):
        stages[row[0]] = int(row[1])
    by_status = {s.value: 0 for s in Status}
    for row in fetch_rows(db, select(board.c.status, func.count()).group_by(board.c.status)):
        by_status[row[0]] = int(row[1])
    reported_today = fetch_rows(
        db,
        select(func.count()).where(
            board.c.reported_at >= day_start_utc(today),
            board.c.reported_at < day_start_utc(today + timedelta(days=1)),
        ),
    )[0][0]
    closed_today = fetch_rows(
        db,
        select(func.coalesce(func.sum(daily.c.closed), 0)).where(daily.c.day == today.isoformat()),
    )[0][0]
    overdue = fetch_rows(db, select(func.count(distinct(d.c.case_id))).where(d.c.due_at < now_iso))[
        0
    ][0]
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
    now_iso = check_now(now)
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
            fetch_rows(db, select(func.count()).select_from(d).where(condition))[0][0]
        )
        rows = fetch_rows(db, base.where(condition).order_by(*order).limit(BOARD_ROWS))
        result[name] = [dict(r._mapping) for r in rows]
    return result


# --- trend ---------------------------------------------------------------------------------------

#: The longest trend a dashboard may ask for, in China days.
MAX_TREND_DAYS = 90
#: What a trend counts per China day, in the closed loop's order.
TREND_KEYS = ("reported", "whistled", "reported_in", "closed", "rated")


def trend(db: Db, now: datetime, days: int) -> Json:
    """Per China day of the last `days` (today included): cases reported, whistled and reported in
    (their lead department's report-in, which moves a case into 处置), closings and residents' ratings.

    The first three count board rows by their milestone time, bucketed into days in SQL (the board
    has one row per case, and `reported_at` is indexed); closings and ratings sum the daily roll-up
    per department, as `overview` counts `closed_today`, so today's figures agree with it.
    """
    now_iso = check_now(now)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_TREND_DAYS:
        raise invalid(
            "invalid_days",
            f"天数须在 1 到 {MAX_TREND_DAYS} 之间",
            f"days must be 1 to {MAX_TREND_DAYS}",
            "days",
            value=repr(days),
        )
    last = china_day(now)
    first = last - timedelta(days=days - 1)
    day_list = [first + timedelta(days=i) for i in range(days)]
    bounds = [day_start_utc(day) for day in [*day_list, last + timedelta(days=1)]]
    counts = {
        "reported": _per_day(db, case_board_t.c.reported_at, bounds),
        "whistled": _per_day(db, case_board_t.c.whistled_at, bounds),
        "reported_in": _per_day(db, case_board_t.c.lead_reported_in_at, bounds),
        **_rollup_per_day(db, [day.isoformat() for day in day_list], ("closed", "rated")),
    }
    return {
        "as_of": now_iso,
        "start": first.isoformat(),
        "end": last.isoformat(),
        "days": [
            {"day": day.isoformat(), **{key: counts[key][i] for key in TREND_KEYS}}
            for i, day in enumerate(day_list)
        ],
    }


def _per_day(db: Db, column: ColumnElement[str], bounds: list[str]) -> list[int]:
    """Rows whose `column` falls in each [bounds[i], bounds[i+1]) (China days as UTC text)."""
    index = _bucket(column, bounds, 0, len(bounds) - 1).label("day_index")
    query = (
        select(index, func.count())
        .where(column >= bounds[0], column < bounds[-1])
        .group_by(literal_column("day_index"))  # by name: PostgreSQL sees one expression
    )
    found = [0] * (len(bounds) - 1)
    for row in fetch_rows(db, query):
        found[int(row[0])] = int(row[1])
    return found


def _bucket(
    column: ColumnElement[str], bounds: list[str], low: int, high: int
) -> ColumnElement[int]:
    """The index i in [low, high) of the bucket holding `column`, as a binary search in SQL: a flat
    CASE over 90 days costs 90 comparisons a row, this one seven (and it runs on either database)."""
    if high - low == 1:
        return literal_column(str(low), Integer)
    middle = (low + high) // 2
    return case(
        (column < bounds[middle], _bucket(column, bounds, low, middle)),
        else_=_bucket(column, bounds, middle, high),
    )


def _rollup_per_day(db: Db, days: list[str], keys: tuple[str, ...]) -> dict[str, list[int]]:
    """Counters of the daily roll-up per department, summed per day (missing days count 0)."""
    daily = perf_by["department"]
    query = (
        select(daily.c.day, *(func.coalesce(func.sum(daily.c[key]), 0) for key in keys))
        .where(daily.c.day >= days[0], daily.c.day <= days[-1])
        .group_by(daily.c.day)
    )
    by_day = {row[0]: row[1:] for row in fetch_rows(db, query)}
    return {
        key: [int(by_day[day][k]) if day in by_day else 0 for day in days]
        for k, key in enumerate(keys)
    }
