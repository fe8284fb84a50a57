"""projections.queries.trend: per China day, cases reported / whistled / reported in from the board,
closings and ratings from the daily roll-up, on SQLite and PostgreSQL views.

Rows are written straight into the views DB at chosen times, so the day boundaries (00:00 Beijing =
16:00 UTC the day before) and the edges of the window are exercised exactly; the gateway test
(`gateway/test_trend_api.py`) checks the same query over events folded by the real projectors.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from domain.errors import InvalidInput
from projections.case_board import case_board
from projections.dept_performance import perf_by, perf_daily
from projections.queries import MAX_TREND_DAYS, TREND_KEYS, overview, trend
from tests.integration.test_queries import board_row, refused

#: Monday 2026-03-02, 09:00 in Beijing.
NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def case_at(n: int, reported: str, whistled: str | None = None, lead_in: str | None = None) -> Any:
    """A board row reported (and maybe whistled, reported in) at these UTC times."""
    return board_row(n) | {
        "reported_at": reported,
        "whistled_at": whistled,
        "lead_reported_in_at": lead_in,
    }


def rollup(day: str, department: str, closed: int, rated: int) -> dict[str, Any]:
    """A roll-up row as `perf_daily` and its per-department sum both hold it (one place each)."""
    where = {"street": "jianwai", "community": "jianwai_c01", "duty_item": "CG-001"}
    return {"day": day, "department": department, "closed": closed, "rated": rated} | where


@pytest.fixture
def seeded(views_engine: Engine) -> Engine:
    cases = [
        # 2026-03-01 23:59:59 Beijing: yesterday; whistled and reported in after midnight: today.
        case_at(
            0,
            "2026-03-01T15:59:59.000000Z",
            "2026-03-01T16:00:00.000000Z",
            "2026-03-02T00:30:00.000000Z",
        ),
        case_at(1, "2026-03-01T16:00:00.000000Z"),  # 00:00 Beijing: today
        case_at(2, "2026-03-02T00:59:00.000000Z", "2026-03-02T00:59:30.000000Z"),
        case_at(3, "2026-02-24T16:00:00.000000Z"),  # 2026-02-25: the first of seven days
        case_at(4, "2026-02-24T15:59:59.999999Z"),  # 2026-02-24: just before the week
        case_at(5, "2026-01-01T00:00:00.000000Z", "2026-02-26T03:00:00.000000Z"),  # old report
    ]
    with views_engine.begin() as conn:
        conn.execute(insert(case_board), cases)
        rollups = [
            rollup("2026-03-02", "cgzf", 2, 1),
            rollup("2026-03-02", "zj", 1, 1),
            rollup("2026-02-25", "cgzf", 4, 0),
            rollup("2026-02-24", "cgzf", 9, 9),  # outside a 7-day window
        ]
        conn.execute(insert(perf_daily), rollups)
        by_department = perf_by["department"]
        conn.execute(
            insert(by_department),
            [{k: v for k, v in row.items() if k in by_department.c} for row in rollups],
        )
    return views_engine


def by_day(result: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {row.pop("day"): row for row in result["days"]}


def test_a_week_counts_each_event_on_its_china_day(seeded: Engine) -> None:
    result = trend(seeded, NOW, 7)
    assert (result["start"], result["end"]) == ("2026-02-24", "2026-03-02")
    days = by_day(trend(seeded, NOW, 7))
    assert list(days) == [f"2026-02-{d}" for d in range(24, 29)] + ["2026-03-01", "2026-03-02"]
    assert days["2026-03-02"] == {
        "reported": 2,
        "whistled": 2,
        "reported_in": 1,
        "closed": 3,
        "rated": 2,
    }
    assert days["2026-03-01"] == dict.fromkeys(TREND_KEYS, 0) | {"reported": 1}
    assert days["2026-02-26"] == dict.fromkeys(TREND_KEYS, 0) | {"whistled": 1}
    assert days["2026-02-25"] == dict.fromkeys(TREND_KEYS, 0) | {"reported": 1, "closed": 4}
    assert days["2026-02-24"] == dict.fromkeys(TREND_KEYS, 0) | {
        "reported": 1,
        "closed": 9,
        "rated": 9,
    }


def test_a_single_day_agrees_with_the_overview(seeded: Engine) -> None:
    (today,) = trend(seeded, NOW, 1)["days"]
    headline = overview(seeded, NOW)
    assert today["day"] == headline["day"] == "2026-03-02"
    assert today["reported"] == headline["reported_today"]
    assert today["closed"] == headline["closed_today"]


def test_longest_window_and_empty_store(views_engine: Engine) -> None:
    days = trend(views_engine, NOW, MAX_TREND_DAYS)["days"]
    assert len(days) == MAX_TREND_DAYS
    assert days[0]["day"] == "2025-12-03"
    assert all(row[key] == 0 for row in days for key in TREND_KEYS)


@pytest.mark.parametrize("days", [0, -7, MAX_TREND_DAYS + 1, 365, True, "7", 7.0])
def test_bad_days_are_refused(views_engine: Engine, days: Any) -> None:
    error = refused(lambda: trend(views_engine, NOW, days), InvalidInput, "invalid_days")
    assert error.details["field"] == "days"


def test_a_naive_now_is_refused(views_engine: Engine) -> None:
    refused(lambda: trend(views_engine, NOW.replace(tzinfo=None), 7), InvalidInput, "invalid_now")
