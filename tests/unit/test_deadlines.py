"""Time limits of a whistle: response hours, emergency steps, handling limits in Chinese working days."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta

import pytest

from domain.calendar import HolidayTable, TableHolidayProvider, WeekendsOnly, WorkingCalendar
from domain.case import Case
from domain.deadlines import (
    DEFAULT_HANDLING_WORKING_DAYS,
    Urgency,
    handling_deadline,
    response_limit,
    whistle_deadlines,
)
from domain.reference import DutyItem, ReferenceData
from infra.calendars import HolidaysPackageProvider
from tests.unit.builders import ITEM, LEAD, RECEIVER, Loop, beijing, drive

H = timedelta(hours=1)


def with_limits(item: DutyItem, hours: int = 24, working_days: int = 5) -> DutyItem:
    return dataclasses.replace(
        item, response_limit_hours=hours, handling_limit_working_days=working_days
    )


# --- response ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("urgency", "item_hours", "expected"),
    [
        (Urgency.NORMAL, None, 24 * H),
        (Urgency.NORMAL, 24, 24 * H),
        (Urgency.NORMAL, 2, 2 * H),  # the item's own shorter limit (e.g. fire hazards)
        (Urgency.NORMAL, 48, 48 * H),
        (Urgency.URGENT, None, 2 * H),
        (Urgency.URGENT, 24, 2 * H),
        (Urgency.URGENT, 1, 1 * H),  # shorter still than urgent: the item wins
        (Urgency.EMERGENCY, None, 1 * H),
        (Urgency.EMERGENCY, 24, 1 * H),
    ],
)
def test_response_limit(
    reference: ReferenceData, urgency: Urgency, item_hours: int | None, expected: timedelta
) -> None:
    item = None if item_hours is None else with_limits(reference.duty_items[ITEM], item_hours)
    assert response_limit(urgency, item) == expected


def test_emergency_steps_are_1_2_4_24_hours(calendar: WorkingCalendar) -> None:
    at = beijing(2026, 3, 2, 9)
    deadlines = whistle_deadlines(at, Urgency.EMERGENCY, None, calendar)
    assert deadlines.emergency_steps == {
        "report": at + 1 * H,
        "assessment": at + 2 * H,
        "plan": at + 4 * H,
        "feedback": at + 24 * H,
    }
    assert deadlines.response == at + 1 * H
    assert deadlines.handling == calendar.add_working_days(at, DEFAULT_HANDLING_WORKING_DAYS)
    assert whistle_deadlines(at, Urgency.URGENT, None, calendar).emergency_steps == {}


def test_the_whistle_records_its_deadlines(loop: Loop) -> None:
    drive(loop, "accepted").whistle(urgency=Urgency.URGENT)
    at = loop.clock.now()
    [event] = loop.case.collect_events()
    assert isinstance(event, Case.Whistled)
    assert event.response_deadline == at + 2 * H
    assert event.handling_deadline == loop.calendar.add_working_days(at, 5)
    assert loop.case.obligations[LEAD]["response_deadline"] == at + 2 * H
    assert loop.case.handling_deadline == event.handling_deadline


def test_an_emergency_case_keeps_its_step_deadlines(loop: Loop) -> None:
    drive(loop, "accepted").whistle(urgency=Urgency.EMERGENCY)
    at = loop.clock.now()
    assert loop.case.emergency_deadlines["plan"] == at + 4 * H
    assert loop.case.obligations[LEAD]["response_deadline"] == at + 1 * H


def test_a_hand_off_gives_the_receiver_the_items_response_limit(loop: Loop) -> None:
    """Handing off does not loosen the item's limit: a 2-hour item stays a 2-hour item."""
    drive(loop, "accepted").whistle(item="PA-002", lead="xf", assisting=())
    loop.case.hand_off(
        loop.lead, loop.tick(), RECEIVER, "非本部门职责", item=loop.reference.duty_items["PA-002"]
    )
    assert loop.case.obligations[RECEIVER]["response_deadline"] == loop.clock.now() + 2 * H


def test_a_determination_gives_a_new_department_the_items_response_limit(loop: Loop) -> None:
    item = loop.reference.duty_items["PA-002"]
    drive(loop, "accepted").whistle(item="PA-002", lead="xf", assisting=())
    loop.hand_off(RECEIVER)
    loop.dispute()
    loop.case.determine_responsibility(
        loop.actors["centre"], loop.tick(), "ga", "依据职责清单 PA-002", item=item
    )
    assert loop.case.obligations["ga"]["response_deadline"] == loop.clock.now() + 2 * H


# --- handling, in working days -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("whistled", "working_days", "due", "why"),
    [
        ((2026, 3, 2, 9), 5, (2026, 3, 10), "Mon + 5 working days: end of next Monday"),
        ((2026, 3, 6, 17), 1, (2026, 3, 10), "Friday: the next working day is Monday"),
        ((2026, 9, 30, 10), 5, (2026, 10, 14), "国庆: Oct 8, 9, 10 (Saturday), 12, 13"),
        ((2026, 2, 13, 10), 3, (2026, 2, 26), "春节: Feb 14 (Saturday), 24, 25"),
        ((2026, 2, 27, 10), 1, (2026, 3, 1), "Feb 28 is a working Saturday"),
        ((2026, 9, 18, 10), 1, (2026, 9, 21), "Sep 20 is a working Sunday"),
        ((2026, 10, 9, 10), 1, (2026, 10, 11), "Oct 10 is a working Saturday"),
        ((2026, 9, 24, 10), 1, (2026, 9, 29), "中秋 Sep 25-27, then Sep 28"),
    ],
)
def test_handling_limit_across_holidays_and_make_up_days(
    calendar: WorkingCalendar,
    whistled: tuple[int, ...],
    working_days: int,
    due: tuple[int, int, int],
    why: str,
) -> None:
    """The deadline is the end (24:00 Beijing) of the last working day, i.e. 00:00 of `due`."""
    assert calendar.add_working_days(beijing(*whistled), working_days) == beijing(*due), why


def test_handling_limit_comes_from_the_item_or_the_emergency_default(
    calendar: WorkingCalendar, reference: ReferenceData
) -> None:
    at = beijing(2026, 3, 2, 9)
    item = with_limits(reference.duty_items[ITEM], working_days=10)
    assert handling_deadline(at, item, calendar) == beijing(2026, 3, 17)
    assert handling_deadline(at, None, calendar) == beijing(2026, 3, 10)


def test_counting_starts_from_the_date_in_beijing_not_utc(calendar: WorkingCalendar) -> None:
    """00:30 on Tuesday in Beijing is still Monday in UTC; the limit counts from Tuesday."""
    at = datetime(2026, 3, 2, 16, 30, tzinfo=UTC)  # 2026-03-03 00:30 Beijing
    due = calendar.add_working_days(at, 1)
    assert due == beijing(2026, 3, 5)
    assert due.tzinfo is UTC  # given back in the caller's timezone


def test_a_handling_limit_is_at_least_one_working_day(calendar: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="at least one"):
        calendar.add_working_days(beijing(2026, 3, 2, 9), 0)


def test_a_deadline_into_2027_uses_the_fallback_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The table ends with 2026; a whistle on 30 December must still get a deadline."""
    calendar = WorkingCalendar(TableHolidayProvider(HolidayTable.shipped(), WeekendsOnly()))
    with caplog.at_level(logging.WARNING, logger="domain.calendar"):
        first = calendar.add_working_days(beijing(2026, 12, 30, 10), 3)
        second = calendar.add_working_days(beijing(2026, 12, 31, 10), 3)
    # Dec 31, Jan 1 (weekends-only knows no New Year), Jan 4.
    assert first == beijing(2027, 1, 5)
    assert second == beijing(2027, 1, 6)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "2027" in caplog.records[0].getMessage()


def test_a_deadline_into_2027_with_the_holidays_package_skips_new_year() -> None:
    calendar = WorkingCalendar(
        TableHolidayProvider(HolidayTable.shipped(), HolidaysPackageProvider())
    )
    # Dec 31, then Jan 1 is a holiday: Jan 4, Jan 5.
    assert calendar.add_working_days(beijing(2026, 12, 30, 10), 3) == beijing(2027, 1, 6)


@pytest.mark.parametrize("decided", [RECEIVER, LEAD])
def test_a_determination_restarts_the_response_clock_of_a_department_yet_to_report_in(
    loop: Loop, decided: str
) -> None:
    """While disputed the receiver may not report in; nor could a lead that handed off at once.

    Whoever the command centre names answers within the response limit from the determination,
    as the event's `response_deadline` says, not from a deadline that ran out during the dispute.
    """
    drive(loop, "disputed")
    loop.clock.advance(timedelta(days=2))
    loop.determine(decided)
    [event] = loop.case.collect_events()
    assert isinstance(event, Case.ResponsibilityDetermined)
    assert event.response_deadline == loop.clock.now() + 24 * H
    assert loop.case.obligations[decided]["response_deadline"] == event.response_deadline
    assert loop.case.due(decided, "response") == event.response_deadline


def test_a_determination_keeps_a_report_in_already_made(loop: Loop) -> None:
    drive(loop, "in_handling")
    reported_in_at = loop.clock.now()
    loop.hand_off(RECEIVER)
    loop.dispute()
    loop.determine(LEAD)
    assert loop.case.obligations[LEAD]["reported_in_at"] == reported_in_at
    assert loop.case.due(LEAD, "response") is None
