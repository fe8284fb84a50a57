"""District-wide views and department measures, read from the projections at the gateway clock's now.

Periods are China dates: either `month=YYYY-MM`, or `start`/`end` (each defaulting to this month's
first day and today), so a dashboard asking for nothing gets month-to-date.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from gateway import problems
from gateway.auth import Principal
from gateway.deps import ResourcesDep, allow
from gateway.policy import sees_department
from gateway.problems import forbidden
from gateway.schemas.queries import (
    DepartmentPerformancePublic,
    DimensionMeasuresPublic,
    LinkageCellPublic,
    OverviewPublic,
    RankingEntryPublic,
    SupervisionBoardPublic,
    TrendPublic,
)
from projections.queries import (
    DIMENSIONS,
    MAX_TREND_DAYS,
    RANKING_KEYS,
    Period,
    china_day,
    department_performance,
    linkage_matrix,
    measures_by,
    overview,
    performance_ranking,
    supervision_board,
    trend,
)
from projections.queries.common import bad_period

router = APIRouter(tags=["views"])

Json = dict[str, Any]
START = Query(
    description="First China date of the period (YYYY-MM-DD); default: this month's first."
)
END = Query(description="Last China date of the period (YYYY-MM-DD); default: today.")
MONTH = Query(description="A whole month (YYYY-MM) instead of `start`/`end`.", examples=["2026-03"])


def period_of(now: datetime, start: str | None, end: str | None, month: str | None) -> Period:
    """The period the query names, month-to-date (China time) when it names none."""
    if month is not None:
        if start is not None or end is not None:
            raise bad_period("give either month or start/end")
        return Period.month(month)
    today = china_day(now)
    return Period.parse(start or today.replace(day=1).isoformat(), end or today.isoformat())


@router.get(
    "/api/v1/views/overview",
    summary="Cases per closed-loop stage and status, today's flow, open and overdue now",
    operation_id="overview",
    response_model=OverviewPublic,
    responses=problems.responses(401, 403),
)
def get_overview(
    _: Annotated[Principal, Depends(allow("overview"))], resources: ResourcesDep
) -> Json:
    return overview(resources.views, resources.clock.now())


@router.get(
    "/api/v1/views/linkage",
    summary="Street × department × community: open, overdue, closed and mean response",
    operation_id="linkage",
    response_model=list[LinkageCellPublic],
    responses=problems.responses(401, 403),
)
def get_linkage(
    _: Annotated[Principal, Depends(allow("linkage"))], resources: ResourcesDep
) -> list[Json]:
    return linkage_matrix(resources.views, resources.clock.now())


@router.get(
    "/api/v1/views/supervision",
    summary="Overdue obligations and obligations under white, yellow or red supervision",
    operation_id="supervision_board",
    response_model=SupervisionBoardPublic,
    responses=problems.responses(401, 403),
)
def get_supervision(
    _: Annotated[Principal, Depends(allow("supervision-board"))], resources: ResourcesDep
) -> Json:
    return supervision_board(resources.views, resources.clock.now())


@router.get(
    "/api/v1/views/trend",
    summary="Per China day of the last days: cases reported, whistled, reported in, closed, rated",
    operation_id="trend",
    response_model=TrendPublic,
    responses=problems.responses(401, 403, 422),
)
def get_trend(
    _: Annotated[Principal, Depends(allow("trend"))],
    resources: ResourcesDep,
    days: Annotated[
        int,
        Query(
            description=f"How many China days, today included (1–{MAX_TREND_DAYS}).", examples=[7]
        ),
    ] = 7,
) -> Json:
    return trend(resources.views, resources.clock.now(), days)


@router.get(
    "/api/v1/views/performance",
    summary="Every department's measures over a period, best first",
    operation_id="performance_ranking",
    response_model=list[RankingEntryPublic],
    responses=problems.responses(401, 403, 422),
)
def get_ranking(
    _: Annotated[Principal, Depends(allow("performance-ranking"))],
    resources: ResourcesDep,
    start: Annotated[str | None, START] = None,
    end: Annotated[str | None, END] = None,
    month: Annotated[str | None, MONTH] = None,
    by: Annotated[
        str,
        Query(description=f"Rank by one of: {', '.join(RANKING_KEYS)}.", examples=["score"]),
    ] = "score",
) -> list[Json]:
    now = resources.clock.now()
    return performance_ranking(resources.views, period_of(now, start, end, month), now, by)


@router.get(
    "/api/v1/views/measures",
    summary="The measures per street, community, duty item or duty-list section over a period",
    operation_id="measures_by",
    response_model=list[DimensionMeasuresPublic],
    responses=problems.responses(401, 403, 422),
)
def get_measures(
    _: Annotated[Principal, Depends(allow("measures-by"))],
    resources: ResourcesDep,
    dimension: Annotated[
        str, Query(description=f"One of: {', '.join(DIMENSIONS)}.", examples=["street"])
    ] = "street",
    start: Annotated[str | None, START] = None,
    end: Annotated[str | None, END] = None,
    month: Annotated[str | None, MONTH] = None,
) -> list[Json]:
    now = resources.clock.now()
    return measures_by(resources.views, period_of(now, start, end, month), now, dimension)


@router.get(
    "/api/v1/departments/{department}/performance",
    summary="One department's measures over a period",
    description="A department token reads only its own; oversight roles read any.",
    operation_id="department_performance",
    response_model=DepartmentPerformancePublic,
    responses=problems.responses(401, 403, 404, 422),
)
def get_department_performance(
    department: Annotated[str, Path(description="Department code.", examples=["cgzf"])],
    principal: Annotated[Principal, Depends(allow("department-performance"))],
    resources: ResourcesDep,
    start: Annotated[str | None, START] = None,
    end: Annotated[str | None, END] = None,
    month: Annotated[str | None, MONTH] = None,
) -> Json:
    if not sees_department(principal, department):
        raise forbidden("a department reads only its own performance")
    now = resources.clock.now()
    period = period_of(now, start, end, month)
    return department_performance(resources.views, department, period, now)
