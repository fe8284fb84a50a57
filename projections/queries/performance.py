"""Department measures for any period: sums of `perf_daily` days, the DOMAIN.md measures, ranking, by dimension."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Table,
    and_,
    case,
    func,
    select,
)

from domain.errors import NotFound
from projections import kpi
from projections.deadlines import deadlines as deadlines_t
from projections.dept_performance import BUCKETS, DAILY_KEYS, perf_by
from projections.queries.common import (
    Db,
    Json,
    Period,
    bad_period,
    check_now,
    fetch_rows,
    invalid,
    reference_data,
)

# --- department measures ---------------------------------------------------------------------

#: The key columns of `perf_daily`; every other column is a count or a sum.


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


def _measure_columns(table: Table) -> list[Any]:
    return [c for c in table.c if c.name not in DAILY_KEYS]


def _summed(columns: Sequence[Any]) -> list[Any]:
    return [func.coalesce(func.sum(c), 0).label(c.name) for c in columns]


def _plain_sums(mapping: Any, columns: Sequence[Any]) -> dict[str, float]:
    """Sums as Python numbers (PostgreSQL hands back Decimals)."""
    return {c.name: float(mapping[c.name] or 0) for c in columns}


def _period_sums(db: Db, period: Period, dimension: str) -> dict[tuple[str, ...], dict[str, float]]:
    """Sums of every measure over the period, per value of one dimension.

    From the narrow roll-up of that dimension (`perf_daily_by_<dimension>`): the range on `day`
    (the primary key's first column) keeps this to the period's rows, a few per day.
    """
    daily = perf_by[dimension]
    columns = _measure_columns(daily)
    keys = [daily.c[dimension]]
    group = (dimension,)
    query = (
        select(*keys, *_summed(columns))
        .where(daily.c.day >= period.first_day, daily.c.day <= period.last_day)
        .group_by(*keys)
    )
    return {
        tuple(str(row._mapping[name]) for name in group): _plain_sums(row._mapping, columns)
        for row in fetch_rows(db, query)
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
        for row in fetch_rows(db, query)
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
    buckets = [n.get(b, 0) for b in BUCKETS]
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
            **{k: v for k, v in n.items() if k not in BUCKETS},
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
    return {c.name: 0.0 for c in _measure_columns(perf_by["department"])}


def _check_department(department: object) -> str:
    if not isinstance(department, str) or department not in reference_data().departments:
        raise NotFound(
            "department_not_found",
            f"部门不存在：{department!r}",
            f"no department {department!r}",
            department=str(department),
        )
    return department


def _check_period(period: object) -> Period:
    if not isinstance(period, Period):
        raise bad_period("not a Period")
    return period


def department_performance(db: Db, department: str, period: Period, now: datetime) -> Json:
    """A department's measures over a period (snapshot measures as of `now`)."""
    _check_department(department)
    _check_period(period)
    now_iso = check_now(now)
    daily = perf_by["department"]
    columns = _measure_columns(daily)
    query = select(*_summed(columns)).where(
        daily.c.day >= period.first_day,
        daily.c.day <= period.last_day,
        daily.c.department == department,
    )
    found = fetch_rows(db, query)
    sums = _plain_sums(found[0]._mapping, columns) if found else _zero_sums()
    snapshot = _snapshots(db, now_iso, (), department=department).get((), Snapshot())
    dept = reference_data().departments[department]
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
        raise invalid(
            "invalid_ranking",
            f"排序指标无效：{by!r}",
            f"rank by one of {', '.join(RANKING_KEYS)}",
            "by",
        )
    _check_period(period)
    now_iso = check_now(now)
    sums = _period_sums(db, period, "department")
    snapshots = _snapshots(db, now_iso, ("department",))
    ref = reference_data()
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
        raise invalid(
            "invalid_dimension",
            f"维度无效：{dimension!r}",
            f"dimension is one of {', '.join(DIMENSIONS)}",
            "dimension",
        )
    _check_period(period)
    now_iso = check_now(now)
    column = "duty_item" if dimension == "section" else dimension
    sums = _period_sums(db, period, column)
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
    items = reference_data().duty_items

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
