"""Working days in China: public holidays and make-up working days (调休), behind a provider interface.

Handling limits are counted in working days, and a weekend-only calendar is wrong around 春节 and 国庆,
when Saturdays or Sundays become working days. The shipped table is authoritative for the years it has;
other years go to a fallback provider (in production the `holidays` package, wired in by infra).
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from importlib import resources
from typing import Protocol

from domain.clock import CHINA_TZ

log = logging.getLogger(__name__)


class HolidayProvider(Protocol):
    def is_working_day(self, day: date) -> bool: ...


class WeekendsOnly:
    """Monday to Friday; the last resort when nothing better knows a year."""

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5


class RuleBasedHolidays:
    """Weekdays minus a set of holidays: the shape of the `holidays` package, which knows no make-up days."""

    def __init__(self, holidays: Iterable[date]) -> None:
        self._holidays = frozenset(holidays)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self._holidays


@dataclass(frozen=True)
class HolidayYear:
    year: int
    source: str
    holidays: frozenset[date]
    makeup_workdays: frozenset[date]


@dataclass(frozen=True)
class HolidayTable:
    version: str
    years: dict[int, HolidayYear] = field(default_factory=dict)

    @classmethod
    def shipped(cls) -> HolidayTable:
        text = (
            resources.files("domain.reference").joinpath("data/holidays_cn.toml").read_text("utf-8")
        )
        return cls.from_toml(text)

    @classmethod
    def from_toml(cls, text: str) -> HolidayTable:
        raw = tomllib.loads(text)
        years = {
            int(y): HolidayYear(
                year=int(y),
                source=str(spec.get("source", "")),
                holidays=frozenset(date.fromisoformat(d) for d in spec["holidays"]),
                makeup_workdays=frozenset(date.fromisoformat(d) for d in spec["makeup_workdays"]),
            )
            for y, spec in raw["years"].items()
        }
        return cls(version=str(raw["version"]), years=years)


class TableHolidayProvider:
    """The shipped table first; a fallback (logged once per year) for years the table lacks."""

    def __init__(self, table: HolidayTable, fallback: HolidayProvider | None = None) -> None:
        self.table = table
        self._fallback: HolidayProvider = fallback or WeekendsOnly()
        self._warned: set[int] = set()

    def is_working_day(self, day: date) -> bool:
        year = self.table.years.get(day.year)
        if year is None:
            self._warn_once(day.year)
            return self._fallback.is_working_day(day)
        if day in year.makeup_workdays:
            return True
        return day.weekday() < 5 and day not in year.holidays

    def covers(self, year: int) -> bool:
        return year in self.table.years

    def _warn_once(self, year: int) -> None:
        if year not in self._warned:
            self._warned.add(year)
            log.warning(
                "holiday table %s has no year %d; using %s (make-up working days unknown)",
                self.table.version,
                year,
                type(self._fallback).__name__,
            )


class WorkingCalendar:
    """Deadline arithmetic in China's local time over a holiday provider."""

    def __init__(self, provider: HolidayProvider) -> None:
        self.provider = provider

    def is_working_day(self, day: date) -> bool:
        return self.provider.is_working_day(day)

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The end (24:00 China time) of the `days`-th working day after the day of `start`.

        Counting starts the next day, as a notice served today gives "N 个工作日内" from tomorrow;
        the result is returned in the timezone of `start`.
        """
        if days < 1:
            raise ValueError("a handling limit is at least one working day")
        day = start.astimezone(CHINA_TZ).date()
        remaining = days
        while remaining:
            day += timedelta(days=1)
            if self.provider.is_working_day(day):
                remaining -= 1
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=CHINA_TZ)
        return end.astimezone(start.tzinfo)

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]: how late something is, in the unit its limit was given."""
        count, day = 0, start
        while day < end:
            day += timedelta(days=1)
            count += self.provider.is_working_day(day)
        return count
