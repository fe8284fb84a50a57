"""Time limits of a whistle: response (报到) and handling (办理) deadlines, emergency steps.

Limits from the seeds: a whistle is answered within 24 h (2 h when urgent); an emergency (突发事件) is
reported within 1 h, assessed within 2 h, planned within 4 h and fed back within 24 h; handling limits
come from the duty item in working days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from domain.calendar import WorkingCalendar
from domain.reference.model import DutyItem


class Urgency(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"  # 紧急
    EMERGENCY = "emergency"  # 突发事件


NORMAL_RESPONSE = timedelta(hours=24)
URGENT_RESPONSE = timedelta(hours=2)
EMERGENCY_STEPS: dict[str, timedelta] = {
    "report": timedelta(hours=1),  # 报告
    "assessment": timedelta(hours=2),  # 研判
    "plan": timedelta(hours=4),  # 处置方案
    "feedback": timedelta(hours=24),  # 反馈
}
#: Handling limit for an emergency outside the duty list, which has no item to take one from.
DEFAULT_HANDLING_WORKING_DAYS = 5


@dataclass(frozen=True)
class WhistleDeadlines:
    response: datetime
    handling: datetime
    emergency_steps: dict[str, datetime] = field(default_factory=dict)


def response_limit(urgency: Urgency, item: DutyItem | None) -> timedelta:
    """How long a whistled department has to report in."""
    if urgency is Urgency.EMERGENCY:
        return EMERGENCY_STEPS["report"]
    item_limit = timedelta(hours=item.response_limit_hours) if item else NORMAL_RESPONSE
    if urgency is Urgency.URGENT:
        return min(URGENT_RESPONSE, item_limit)
    return item_limit


def handling_deadline(at: datetime, item: DutyItem | None, calendar: WorkingCalendar) -> datetime:
    days = item.handling_limit_working_days if item else DEFAULT_HANDLING_WORKING_DAYS
    return calendar.add_working_days(at, days)


def whistle_deadlines(
    at: datetime, urgency: Urgency, item: DutyItem | None, calendar: WorkingCalendar
) -> WhistleDeadlines:
    steps = (
        {step: at + delta for step, delta in EMERGENCY_STEPS.items()}
        if urgency is Urgency.EMERGENCY
        else {}
    )
    return WhistleDeadlines(
        response=at + response_limit(urgency, item),
        handling=handling_deadline(at, item, calendar),
        emergency_steps=steps,
    )
