"""Shared pieces of the read queries: reference data, input checks, rows, periods (China days)."""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Select,
)

from domain.clock import CHINA_TZ
from domain.errors import InvalidInput
from domain.reference import ReferenceData, load_reference
from infra.event_codec import iso_utc

Json = dict[str, Any]
Db = Engine | Connection


@cache
def reference_data() -> ReferenceData:
    return load_reference()


def invalid(code: str, zh: str, en: str, field: str, **details: object) -> InvalidInput:
    return InvalidInput(code, zh, en, field=field, **details)


def fetch_rows(db: Db, query: Select[Any]) -> list[Row[Any]]:
    if isinstance(db, Connection):
        return list(db.execute(query).all())
    with db.connect() as conn:
        return list(conn.execute(query).all())


def check_now(now: datetime) -> str:
    if now.tzinfo is None:
        raise invalid("invalid_now", "时间须带时区", "now needs a time zone", "now")
    return iso_utc(now)


# --- periods ---------------------------------------------------------------------------------

DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
#: The longest period a query sums over: three years of days (one leap day included).
MAX_PERIOD_DAYS = 3 * 365 + 1


def bad_period(en: str, **details: object) -> InvalidInput:
    return invalid(
        "invalid_period", f"统计期间无效：{en}", f"invalid period: {en}", "period", **details
    )


def _parse_day(value: object, name: str) -> date:
    if not isinstance(value, str) or not DATE_PATTERN.match(value):
        raise bad_period(f"{name} must be YYYY-MM-DD", value=repr(value))
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise bad_period(f"{name} is not a calendar date", value=value) from None


def china_day(moment: datetime) -> date:
    """The China date (UTC+8) of a moment: how every roll-up books its day."""
    return moment.astimezone(CHINA_TZ).date()


def day_start_utc(day: date) -> str:
    """00:00 China time of `day`, as the fixed-width UTC text the read models compare."""
    return iso_utc(datetime.combine(day, time(0), tzinfo=CHINA_TZ))


@dataclass(frozen=True)
class Period:
    """An inclusive range of China dates, at most three years long."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise bad_period("end is before start", start=str(self.start), end=str(self.end))
        if (self.end - self.start).days + 1 > MAX_PERIOD_DAYS:
            raise bad_period("longer than three years", start=str(self.start), end=str(self.end))

    @classmethod
    def parse(cls, start: str, end: str) -> Period:
        return cls(_parse_day(start, "start"), _parse_day(end, "end"))

    @classmethod
    def month(cls, month: str) -> Period:
        """`Period.month("2026-03")`: the whole calendar month."""
        found = _MONTH.match(month) if isinstance(month, str) else None
        if not found or not 1 <= int(found[2]) <= 12 or int(found[1]) < 1:
            raise bad_period("month must be YYYY-MM", value=repr(month))
        first = date(int(found[1]), int(found[2]), 1)
        return cls(first, first.replace(day=monthrange(first.year, first.month)[1]))

    @classmethod
    def day(cls, day: date) -> Period:
        return cls(day, day)

    @property
    def first_day(self) -> str:
        return self.start.isoformat()

    @property
    def last_day(self) -> str:
        return self.end.isoformat()

    def as_dict(self) -> Json:
        return {"start": self.first_day, "end": self.last_day}
