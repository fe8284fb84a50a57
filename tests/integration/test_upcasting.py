"""Stored `Whistled` rows of version 1 (before `emergency_deadlines`) still read, and their cases go on.

The version-1 row is made the way an old release stored it: the state of a real version-2 event with
`class_version` and `emergency_deadlines` taken out, written straight through the recorder.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.actors import Actor
from domain.case import Case
from domain.case_rules import Status
from domain.clock import ManualClock
from domain.deadlines import EMERGENCY_STEPS, Urgency
from domain.service import CaseService
from infra.settings import Settings
from infra.store import open_service
from tests.integration.builders import decode_state, drive, encode_state, notifications, topic_of
from tests.unit.builders import ITEM, LEAD, dept


def _store_whistle_as_v1(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> UUID:
    """An accepted case, then an emergency whistle stored in the version-1 layout."""
    case_id = drive(service, clock, actors, "accepted").case_id
    clock.advance(timedelta(minutes=5))
    case: Any = service.repository.get(case_id)
    case.whistle(
        actors["street"],
        clock.now(),
        lead=LEAD,
        item=service.reference.duty_items[ITEM],
        duty_list_version=1,
        urgency=Urgency.EMERGENCY,
        calendar=service.calendar,
    )
    (event,) = case.collect_events()
    v2 = service.mapper.to_stored_event(event)
    state = decode_state(service, v2)
    assert state.pop("class_version") == 2
    assert state.pop("emergency_deadlines").keys() == EMERGENCY_STEPS.keys()
    service.recorder.insert_events([encode_state(service, v2, state)])
    return case_id


def test_whistled_is_written_as_version_2(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    assert Case.Whistled.class_version == 2
    drive(service, clock, actors, "whistled")
    (row,) = [n for n in notifications(service) if n.topic == topic_of("Whistled")]
    state = decode_state(service, row)
    assert state["class_version"] == 2
    assert state["emergency_deadlines"] == {}


@pytest.mark.parametrize("reader", ["same service", "new service"])
def test_a_version_1_whistle_reads_with_no_emergency_deadlines(
    reader: str,
    service: CaseService,
    store_settings: Settings,
    clock: ManualClock,
    actors: dict[str, Actor],
) -> None:
    case_id = _store_whistle_as_v1(service, clock, actors)
    (row,) = [n for n in notifications(service) if n.topic == topic_of("Whistled")]
    assert "class_version" not in decode_state(service, row)

    other = open_service(store_settings, clock) if reader == "new service" else service
    try:
        state = other.case(case_id)
        whistled = other.history(case_id)[2]
    finally:
        if other is not service:
            other.close()

    assert (state["version"], state["status"]) == (3, Status.WHISTLED)
    assert state["urgency"] == Urgency.EMERGENCY
    assert state["emergency_deadlines"] == {}
    assert state["lead_department"] == LEAD
    assert (whistled["type"], whistled["payload"]["emergency_deadlines"]) == ("Whistled", {})


def test_a_case_whistled_under_version_1_goes_on_through_the_loop(
    service: CaseService, store_settings: Settings, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    case_id = _store_whistle_as_v1(service, clock, actors)
    later = open_service(store_settings, clock)
    street, lead = actors["street"], dept(LEAD)
    try:
        assert later.report_in(case_id, lead, "on_site") == 4
        assert later.report_handling(case_id, lead, "resolved") == 5
        clock.advance(timedelta(hours=1))
        assert later.send_back_for_rework(case_id, street, "现场仍有残留") == 6
        assert later.report_handling(case_id, lead, "resolved") == 7
        assert service.close_case(case_id, street) == 8  # the first service, its cache now stale
        state = later.case(case_id)
    finally:
        later.close()

    assert state["status"] == Status.CLOSED
    assert state["emergency_deadlines"] == {}
    item = service.reference.duty_items[ITEM]
    rework_at = service.history(case_id)[5]["at"]
    rework_deadline = service.calendar.add_working_days(rework_at, item.handling_limit_working_days)
    assert service.history(case_id)[5]["payload"]["handling_deadline"] == rework_deadline
