"""Period: inclusive China dates, parsed strictly; bad periods are `invalid_period` with both messages."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from domain.errors import InvalidInput
from projections.queries import MAX_PERIOD_DAYS, Period, china_day, day_start_utc


def test_parse_and_month() -> None:
    assert Period.parse("2026-03-01", "2026-03-31") == Period.month("2026-03")
    assert Period.month("2026-02") == Period(date(2026, 2, 1), date(2026, 2, 28))
    assert Period.month("2024-02").end == date(2024, 2, 29)
    assert Period.month("2026-12") == Period(date(2026, 12, 1), date(2026, 12, 31))
    assert Period.month("9999-12").end == date(9999, 12, 31)  # the last month there is
    assert Period.parse("2026-04-05", "2026-04-05").as_dict() == {
        "start": "2026-04-05",
        "end": "2026-04-05",
    }


def test_three_years_is_the_longest_period() -> None:
    longest = Period.parse("2024-01-01", "2026-12-31")
    assert (longest.end - longest.start).days + 1 == MAX_PERIOD_DAYS
    with pytest.raises(InvalidInput):
        Period.parse("2024-01-01", "2027-01-01")


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-03-31", "2026-03-01"),  # end before start
        ("2026-02-30", "2026-03-01"),  # no such day
        ("20260301", "2026-03-31"),  # not YYYY-MM-DD
        ("2026-3-1", "2026-03-31"),
        ("", "2026-03-31"),
        ("2026-03-01", "yesterday"),
        ("2020-01-01", "2026-01-01"),  # six years
    ],
)
def test_invalid_periods(start: str, end: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        Period.parse(start, end)
    assert raised.value.code == "invalid_period"
    assert raised.value.message_zh
    assert raised.value.message_en
    assert raised.value.details["field"] == "period"


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "2026-3", "26-03", "2026-03-01", ""])
def test_invalid_months(month: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        Period.month(month)
    assert raised.value.code == "invalid_period"


def test_days_are_china_dates() -> None:
    # 16:00 UTC is midnight in Beijing: the next China day begins.
    assert china_day(datetime(2026, 3, 31, 15, 59, tzinfo=UTC)) == date(2026, 3, 31)
    assert china_day(datetime(2026, 3, 31, 16, 0, tzinfo=UTC)) == date(2026, 4, 1)
    assert day_start_utc(date(2026, 4, 1)) == "2026-03-31T16:00:00.000000Z"
