"""The live picture: linkage matrix, overview counts by closed-loop stage, supervision board."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import (
    and_,
    distinct,
    func,
    select,
    true,
)

from domain.case_rules import OPEN_STATUSES, Status
from projections import kpi
from projections.case_board import case_board as case_board_t
from projections.deadlines import deadlines as deadlines_t
from projections.dept_performance import perf_daily as perf_daily_t
from projections.linkage import linkage_cells as linkage_cells_t
from projections.queries.cases import STAGES
from projections.queries.common import Db, Json, check_now, china_day, day_start_utc, fetch_rows

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
