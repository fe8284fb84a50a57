"""The admission rule (准入): nothing outside the duty list is pushed onto the street, bar emergencies.

An emergency may be whistled without a duty item, but only with a written justification, so an
inspector can later see why the list was bypassed.
"""

from __future__ import annotations

from domain.deadlines import Urgency
from domain.errors import InvalidInput
from domain.reference.model import DutyItem

MIN_JUSTIFICATION = 4


def admit_whistle(
    item: DutyItem | None,
    lead: str,
    assisting: tuple[str, ...],
    urgency: Urgency,
    justification: str | None,
) -> None:
    """Raises unless the whistle is covered by `item` or is a justified emergency."""
    if lead in assisting:
        raise InvalidInput(
            "lead_also_assisting",
            "牵头部门不能同时为协办部门",
            "the lead department cannot also assist",
        )
    if len(set(assisting)) != len(assisting):
        raise InvalidInput("duplicate_assisting", "协办部门重复", "assisting departments repeat")
    if item is None:
        _admit_outside_list(urgency, justification)
    elif lead not in item.departments:
        raise InvalidInput(
            "department_not_responsible",
            f"{lead} 不是事项 {item.code} 的责任部门",
            f"{lead} is not named by duty item {item.code}",
            department=lead,
            duty_item=item.code,
        )


def _admit_outside_list(urgency: Urgency, justification: str | None) -> None:
    if urgency is not Urgency.EMERGENCY:
        raise InvalidInput(
            "outside_duty_list",
            "事项不在职责清单内，不得交由街乡办理（突发事件除外）",
            "the matter is outside the duty list; only emergencies may be whistled without an item",
        )
    if not justification or len(justification.strip()) < MIN_JUSTIFICATION:
        raise InvalidInput(
            "justification_required",
            "清单外突发事件须说明理由",
            "an emergency outside the duty list needs a justification",
        )
