"""Unit-test fixtures: a freshly reported case with its clock, calendar and actors."""

from __future__ import annotations

import pytest

from domain.actors import Actor
from domain.calendar import WorkingCalendar
from domain.clock import ManualClock
from domain.reference import ReferenceData
from domain.service import CaseService
from tests.unit.builders import Loop, report_case


@pytest.fixture
def loop(
    reference: ReferenceData,
    clock: ManualClock,
    calendar: WorkingCalendar,
    actors: dict[str, Actor],
) -> Loop:
    case = report_case(actors["resident"], clock.now())
    return Loop(case, clock, calendar, reference, actors)


@pytest.fixture
def service(clock: ManualClock, calendar: WorkingCalendar, reference: ReferenceData) -> CaseService:
    """The application service on the in-memory store, with the shipped duty list published."""
    svc = CaseService(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        clock=clock,
        reference=reference,
        calendar=calendar,
    )
    svc.publish_duty_list()
    return svc
