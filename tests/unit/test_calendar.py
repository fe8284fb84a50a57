"""Working days in China: the shipped table of official holidays and make-up days, and its fallbacks."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import chinese_calendar
import pytest

from domain.calendar import (
    HolidayTable,
    RuleBasedHolidays,
    TableHolidayProvider,
    WeekendsOnly,
    WorkingCalendar,
)
from infra.calendars import HolidaysPackageProvider

#: The make-up working days (调休上班) of 2026, all on a Saturday or Sunday.
MAKEUP_2026 = ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"]


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(n) for n in range((last - first).days + 1)]


@pytest.mark.parametrize("day", MAKEUP_2026)
def test_make_up_days_are_working_days_though_weekends(calendar: WorkingCalendar, day: str) -> None:
    moment = date.fromisoformat(day)
    assert moment.weekday() >= 5
    assert calendar.is_working_day(moment)


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("2026-02-15", "2026-02-23"),  # 春节
        ("2026-10-01", "2026-10-07"),  # 国庆
        ("2026-01-01", "2026-01-03"),  # 元旦
        ("2026-09-25", "2026-09-27"),  # 中秋
    ],
)
def test_holidays_are_not_working_days(calendar: WorkingCalendar, first: str, last: str) -> None:
    period = days(date.fromisoformat(first), date.fromisoformat(last))
    assert not any(calendar.is_working_day(d) for d in period)


def test_an_ordinary_week(calendar: WorkingCalendar) -> None:
    week = days(date(2026, 3, 2), date(2026, 3, 8))
    assert [calendar.is_working_day(d) for d in week] == [True] * 5 + [False] * 2


def test_the_table_agrees_with_chinese_calendar_every_day_of_2024_to_2026() -> None:
    """An independent source of the State Council notices: any difference is a typo in our table."""
    table = TableHolidayProvider(HolidayTable.shipped())
    wrong = [
        d
        for d in days(date(2024, 1, 1), date(2026, 12, 31))
        if table.is_working_day(d) != chinese_calendar.is_workday(d)
    ]
    assert wrong == []


def test_the_table_is_consistent() -> None:
    table = HolidayTable.shipped()
    assert sorted(table.years) == [2024, 2025, 2026]
    for year in table.years.values():
        assert year.source.startswith("国办发明电")
        assert all(d.year == year.year for d in year.holidays | year.makeup_workdays)
        assert not year.holidays & year.makeup_workdays
        assert all(d.weekday() >= 5 for d in year.makeup_workdays)


def test_a_year_the_table_lacks_goes_to_the_fallback_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = TableHolidayProvider(HolidayTable.shipped(), RuleBasedHolidays([date(2027, 1, 1)]))
    assert provider.covers(2026)
    assert not provider.covers(2027)
    with caplog.at_level(logging.WARNING, logger="domain.calendar"):
        answers = [provider.is_working_day(d) for d in days(date(2027, 1, 1), date(2027, 1, 5))]
    assert answers == [False, False, False, True, True]
    [record] = caplog.records
    assert "2027" in record.getMessage()
    assert "RuleBasedHolidays" in record.getMessage()


def test_the_holidays_package_knows_new_year_2027() -> None:
    """Production's fallback: 2027-01-01 (a Friday) is a holiday, though weekends-only says otherwise."""
    new_year = date(2027, 1, 1)
    assert WeekendsOnly().is_working_day(new_year)
    assert not HolidaysPackageProvider().is_working_day(new_year)
    assert HolidaysPackageProvider().is_working_day(date(2027, 1, 4))
    calendar = WorkingCalendar(
        TableHolidayProvider(HolidayTable.shipped(), HolidaysPackageProvider())
    )
    assert not calendar.is_working_day(new_year)


def test_the_holidays_package_has_no_make_up_days() -> None:
    """Why the table comes first: the package would give 2026's working Saturdays off."""
    makeup = [date.fromisoformat(d) for d in MAKEUP_2026]
    assert not any(HolidaysPackageProvider().is_working_day(d) for d in makeup)


def test_working_days_between_counts_the_later_end_only(calendar: WorkingCalendar) -> None:
    # 国庆 2026: Sep 30 (Wed) to Oct 12 (Mon) has Oct 8, 9, 10 (make-up Saturday) and 12.
    assert calendar.working_days_between(date(2026, 9, 30), date(2026, 10, 12)) == 4
    assert calendar.working_days_between(date(2026, 3, 2), date(2026, 3, 2)) == 0
    assert calendar.working_days_between(date(2026, 3, 2), date(2026, 3, 3)) == 1
