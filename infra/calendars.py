"""The working-day calendar in production: the shipped table, then the `holidays` package for other years."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import holidays

from domain.calendar import HolidayTable, TableHolidayProvider, WorkingCalendar


class HolidaysPackageProvider:
    """China's holidays by rule from the `holidays` package; it knows no make-up working days (调休)."""

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in _china_holidays(day.year)


@lru_cache(maxsize=32)
def _china_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("CN", years=year).keys())


def china_calendar(table: HolidayTable | None = None) -> WorkingCalendar:
    return WorkingCalendar(
        TableHolidayProvider(table or HolidayTable.shipped(), HolidaysPackageProvider())
    )
