"""`case(id, as_of=t)`: the case as it stood at t, replayed from the store; nothing before it was reported."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from domain.actors import Actor
from domain.clock import CHINA_TZ, ManualClock
from domain.errors import NotFound
from domain.service import CaseService
from infra.settings import Settings
from infra.store import open_service
from tests.integration.builders import drive, run_full_loop
from tests.unit.builders import ASSISTING, LEAD

TICK = timedelta(microseconds=1)


def test_as_of_each_recorded_moment_gives_the_state_live_then(
    service: CaseService, store_settings: Settings, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    timeline = run_full_loop(service, clock, actors, keep_states=True)
    reader = open_service(store_settings, clock)
    try:
        for version, (at, live) in enumerate(zip(timeline.times, timeline.states, strict=True), 1):
            assert live["version"] == version
            assert service.case(timeline.case_id, as_of=at) == live
            assert reader.case(timeline.case_id, as_of=at + timedelta(minutes=4)) == live
            assert reader.case(timeline.case_id, as_of=at.astimezone(CHINA_TZ)) == live
            if version > 1:
                assert (
                    reader.case(timeline.case_id, as_of=at - TICK) == timeline.states[version - 2]
                )
    finally:
        reader.close()
    later = clock.now() + timedelta(days=365)
    assert service.case(timeline.case_id, as_of=later) == service.case(timeline.case_id)


def test_events_at_the_same_instant_are_all_included(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    case_id = drive(service, clock, actors, "whistled").case_id
    clock.advance(timedelta(hours=1))
    moment = clock.now()
    service.issue_supervision(case_id, actors["inspector"], "white", LEAD, "即将超期")
    last = service.issue_supervision(case_id, actors["inspector"], "red", ASSISTING, "一票否决")

    assert last == 5
    assert service.case(case_id, as_of=moment)["version"] == 5
    assert service.case(case_id, as_of=moment - TICK)["version"] == 3


def test_before_the_report_the_case_was_not_yet_reported(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    timeline = run_full_loop(service, clock, actors)
    for before in (timeline.times[0] - TICK, timeline.times[0] - timedelta(days=400)):
        with pytest.raises(NotFound) as missing:
            service.case(timeline.case_id, as_of=before)
        assert missing.value.code == "case_not_yet_reported"
    assert service.case(timeline.case_id, as_of=timeline.times[0])["version"] == 1


def test_an_unknown_case_is_not_found_at_any_time(service: CaseService, clock: ManualClock) -> None:
    with pytest.raises(NotFound) as missing:
        service.case(uuid4(), as_of=clock.now())
    assert missing.value.code == "case_not_found"


def test_time_travel_reads_the_store_not_the_cache(
    service: CaseService, store_settings: Settings, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    timeline = run_full_loop(service, clock, actors, keep_states=True)
    writer = open_service(store_settings, clock)  # another process moves the case on
    try:
        clock.advance(timedelta(hours=1))
        version = writer.reopen(timeline.case_id, actors["street"], "回访发现问题复发")
    finally:
        writer.close()
    state = service.case(timeline.case_id, as_of=clock.now())
    assert state["version"] == version == timeline.version + 1
    assert service.case(timeline.case_id, as_of=clock.now() - TICK) == timeline.states[-1]
    assert (state["status"], state["round"]) == ("in_handling", 3)
