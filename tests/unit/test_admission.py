"""The admission rule (准入): the street takes only what its duty list names, bar justified emergencies."""

from __future__ import annotations

import pytest

from domain.admission import admit_whistle
from domain.case import Case
from domain.case_rules import Status
from domain.deadlines import Urgency
from domain.errors import InvalidInput
from domain.reference import ReferenceData
from tests.unit.builders import ASSISTING, ITEM, LEAD, OUTSIDER, Loop, assert_refused, drive


@pytest.mark.parametrize("urgency", [Urgency.NORMAL, Urgency.URGENT])
def test_outside_the_list_is_refused_unless_an_emergency(loop: Loop, urgency: Urgency) -> None:
    drive(loop, "accepted")
    assert_refused(
        lambda: loop.whistle(item=None, urgency=urgency, justification="情况紧急，需立即处置"),
        loop.case,
        InvalidInput,
        "outside_duty_list",
    )


@pytest.mark.parametrize("justification", [None, "", "   ", "紧急"])
def test_an_emergency_outside_the_list_needs_a_justification(
    loop: Loop, justification: str | None
) -> None:
    drive(loop, "accepted")
    assert_refused(
        lambda: loop.whistle(item=None, urgency=Urgency.EMERGENCY, justification=justification),
        loop.case,
        InvalidInput,
        "justification_required",
    )


def test_a_justified_emergency_outside_the_list_is_whistled_and_the_reason_kept(loop: Loop) -> None:
    drive(loop, "accepted").whistle(
        lead=OUTSIDER,
        assisting=(),
        item=None,
        urgency=Urgency.EMERGENCY,
        justification="化学品泄漏",
    )
    [event] = loop.case.collect_events()
    assert isinstance(event, Case.Whistled)
    assert (event.duty_item, event.justification, event.urgency) == (
        None,
        "化学品泄漏",
        "emergency",
    )
    assert loop.case.status == Status.WHISTLED


def test_the_lead_must_be_named_by_the_item(loop: Loop, reference: ReferenceData) -> None:
    assert OUTSIDER not in reference.duty_items[ITEM].departments
    drive(loop, "accepted")
    error = assert_refused(
        lambda: loop.whistle(lead=OUTSIDER, assisting=()),
        loop.case,
        InvalidInput,
        "department_not_responsible",
    )
    assert error.details == {"department": OUTSIDER, "duty_item": ITEM}


def test_a_cooperating_department_of_the_item_may_lead(
    loop: Loop, reference: ReferenceData
) -> None:
    """The item names cooperating departments as responsible too; the street picks who leads."""
    assert ASSISTING in reference.duty_items[ITEM].cooperating_departments
    drive(loop, "accepted").whistle(lead=ASSISTING, assisting=(LEAD,))
    assert loop.case.lead_department == ASSISTING


def test_an_emergency_under_the_item_still_needs_a_responsible_lead(loop: Loop) -> None:
    drive(loop, "accepted")
    assert_refused(
        lambda: loop.whistle(lead=OUTSIDER, assisting=(), urgency=Urgency.EMERGENCY),
        loop.case,
        InvalidInput,
        "department_not_responsible",
    )


def test_the_lead_cannot_also_assist(loop: Loop) -> None:
    drive(loop, "accepted")
    assert_refused(
        lambda: loop.whistle(assisting=(ASSISTING, LEAD)),
        loop.case,
        InvalidInput,
        "lead_also_assisting",
    )


def test_assisting_departments_do_not_repeat(loop: Loop) -> None:
    drive(loop, "accepted")
    assert_refused(
        lambda: loop.whistle(assisting=(ASSISTING, OUTSIDER, ASSISTING)),
        loop.case,
        InvalidInput,
        "duplicate_assisting",
    )


def test_assisting_departments_need_not_be_named_by_the_item(reference: ReferenceData) -> None:
    """The item fixes who is responsible; help may come from anywhere."""
    admit_whistle(reference.duty_items[ITEM], LEAD, (OUTSIDER,), Urgency.NORMAL, None)
