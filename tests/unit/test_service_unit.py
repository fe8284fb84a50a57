"""CaseService on the in-memory (popo) store: idempotency, input checks, time travel, history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from domain.actors import Actor
from domain.calendar import WorkingCalendar
from domain.clock import ManualClock
from domain.errors import DomainError, ErrorKind, IllegalState, InvalidInput, NotFound, WrongActor
from domain.service import CaseService
from tests.unit.builders import (
    ASSISTING,
    ITEM,
    LEAD,
    STEP,
    STREET,
    dept,
    report_via,
    whistle_via,
)


def recorded(service: CaseService) -> int:
    return service.recorder.max_notification_id() or 0


def test_a_retried_report_returns_the_first_case(
    service: CaseService, actors: dict[str, Actor]
) -> None:
    before = recorded(service)
    first = report_via(service, actors, key="12345-20260302-0001")
    again = report_via(service, actors, key="12345-20260302-0001")
    assert first == again
    assert recorded(service) == before + 1
    assert report_via(service, actors, key="12345-20260302-0002") != first


def test_reports_without_a_key_are_distinct(service: CaseService, actors: dict[str, Actor]) -> None:
    assert report_via(service, actors) != report_via(service, actors)


Call = Callable[[CaseService, UUID, dict[str, Actor]], object]


def _report(
    street: str = STREET,
    community: str | None = None,
    grid: str | None = None,
    suggested_item: str | None = None,
) -> Call:
    def call(service: CaseService, _: UUID, actors: dict[str, Actor]) -> object:
        return service.report(
            actors["resident"],
            source="resident",
            street=street,
            community=community,
            grid=grid,
            suggested_item=suggested_item,
            title="噪音",
            description="夜间施工",
        )

    return call


def _whistle(lead: str = LEAD, duty_item: str = ITEM, urgency: str = "normal") -> Call:
    def call(service: CaseService, case_id: UUID, actors: dict[str, Actor]) -> object:
        street = actors["street"]
        return service.whistle(case_id, street, lead=lead, duty_item=duty_item, urgency=urgency)

    return call


UNKNOWN = [
    pytest.param(_report(street="nosuch"), "unknown_street", id="street"),
    pytest.param(_report(community="nosuch"), "unknown_community", id="community"),
    pytest.param(_report(community="hujialou_c01"), "community_not_in_street", id="other-street"),
    pytest.param(
        _report(community="jianwai_c01", grid="jianwai_c01_g99"), "unknown_grid", id="grid"
    ),
    pytest.param(_report(grid="jianwai_c01_g01"), "unknown_grid", id="grid-without-community"),
    pytest.param(_report(suggested_item="XX-999"), "unknown_duty_item", id="suggested-item"),
    pytest.param(_whistle(duty_item="XX-999"), "unknown_duty_item", id="whistled-item"),
    pytest.param(_whistle(lead="nosuch"), "unknown_department", id="lead"),
    pytest.param(_whistle(urgency="asap"), "invalid_urgency", id="urgency"),
    pytest.param(
        lambda s, c, a: s.hand_off(c, dept(LEAD), "nosuch", "不属本部门"),
        "unknown_department",
        id="hand-off-to",
    ),
]


@pytest.mark.parametrize(("call", "code"), UNKNOWN)
def test_unknown_codes_are_refused_and_nothing_recorded(
    service: CaseService, actors: dict[str, Actor], call: Call, code: str
) -> None:
    case_id = report_via(service, actors)
    service.accept(case_id, actors["street"])
    before = recorded(service)
    with pytest.raises(InvalidInput) as raised:
        call(service, case_id, actors)
    assert (raised.value.code, raised.value.kind) == (code, ErrorKind.INVALID)
    assert recorded(service) == before
    assert service.case(case_id)["version"] == 2


def test_an_unknown_assisting_department_is_refused(
    service: CaseService, actors: dict[str, Actor]
) -> None:
    case_id = report_via(service, actors)
    service.accept(case_id, actors["street"])
    before = recorded(service)
    with pytest.raises(InvalidInput) as raised:
        service.whistle(case_id, actors["street"], lead=LEAD, assisting=("nosuch",), duty_item=ITEM)
    assert raised.value.code == "unknown_department"
    assert recorded(service) == before


@pytest.mark.parametrize(
    "command",
    [
        lambda s, c, a: s.accept(c, a["street"]),
        lambda s, c, a: s.report_in(c, dept(LEAD), "on_site"),
        lambda s, c, a: s.close_case(c, a["street"]),
        lambda s, c, a: s.case(c),
        lambda s, c, a: s.history(c),
    ],
    ids=["accept", "report_in", "close", "case", "history"],
)
def test_an_unknown_case_is_not_found(
    service: CaseService, actors: dict[str, Actor], command: Call
) -> None:
    before = recorded(service)
    with pytest.raises(NotFound) as raised:
        command(service, uuid4(), actors)
    assert (raised.value.code, raised.value.kind) == ("case_not_found", ErrorKind.NOT_FOUND)
    assert recorded(service) == before


def test_a_refused_command_records_nothing(service: CaseService, actors: dict[str, Actor]) -> None:
    case_id = report_via(service, actors)
    before = recorded(service)
    with pytest.raises(IllegalState) as illegal:
        service.close_case(case_id, actors["street"])
    with pytest.raises(WrongActor) as wrong:
        service.accept(case_id, actors["other_street"])
    assert (illegal.value.code, wrong.value.code) == ("handling_not_reported", "other_street")
    assert recorded(service) == before
    assert service.case(case_id)["version"] == 1


def test_errors_speak_chinese_and_english(service: CaseService, actors: dict[str, Actor]) -> None:
    case_id = report_via(service, actors)
    with pytest.raises(DomainError) as raised:
        service.rate_by_resident(case_id, actors["resident"], "satisfied", True)
    error = raised.value
    assert error.code == "case_not_closed"
    assert error.message("zh") == error.message_zh == "案件未结案，不能评价"
    assert error.message("zh-CN") == error.message_zh
    assert error.message("en") == error.message_en == "only a closed case is rated"
    assert str(error) == "case_not_closed: only a closed case is rated"


def test_whistling_without_a_published_duty_list(
    clock: ManualClock, calendar: WorkingCalendar, actors: dict[str, Actor]
) -> None:
    bare = CaseService(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=clock, calendar=calendar
    )
    case_id = report_via(bare, actors)
    bare.accept(case_id, actors["street"])
    with pytest.raises(IllegalState) as raised:
        bare.whistle(case_id, actors["street"], lead=LEAD, duty_item=ITEM)
    assert raised.value.code == "duty_list_missing"


def test_time_travel_returns_the_case_as_it_stood(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    reported_at = clock.now()
    case_id = whistle_via(service, actors, clock)
    whistled_at = clock.now()
    clock.advance(timedelta(hours=3))
    service.report_in(case_id, dept(LEAD), "on_site")

    then = service.case(case_id, as_of=reported_at + STEP / 2)
    assert (then["status"], then["version"], then["lead_department"]) == ("reported", 1, None)
    at_whistle = service.case(case_id, as_of=whistled_at)
    assert (at_whistle["status"], at_whistle["version"]) == ("whistled", 3)
    assert at_whistle["obligations"][LEAD]["reported_in_at"] is None
    an_hour_later = service.case(case_id, as_of=whistled_at + timedelta(hours=1))
    assert an_hour_later == at_whistle
    now = service.case(case_id)
    assert (now["status"], now["version"]) == ("in_handling", 4)
    assert service.case(case_id, as_of=clock.now()) == now
    with pytest.raises(NotFound) as raised:
        service.case(case_id, as_of=reported_at - timedelta(seconds=1))
    assert raised.value.code == "case_not_yet_reported"


def test_history_lists_every_event_with_actor_and_time(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    start = clock.now()
    case_id = whistle_via(service, actors, clock)
    clock.advance(STEP)
    service.report_in(case_id, dept(ASSISTING), "remote")
    history = service.history(case_id)
    assert [(h["version"], h["type"]) for h in history] == [
        (1, "CaseReported"),
        (2, "CaseAccepted"),
        (3, "Whistled"),
        (4, "ReportedIn"),
    ]
    assert [h["actor"] for h in history] == [
        {"role": "resident", "id": "r-1001"},
        {"role": "street", "id": STREET},
        {"role": "street", "id": STREET},
        {"role": "department", "id": ASSISTING},
    ]
    assert [h["at"] for h in history] == [start + n * STEP for n in range(4)]
    assert history[2]["topic"] == "whistleloop.case.Whistled"
    assert history[2]["payload"]["duty_item"] == ITEM
    assert history[3]["payload"] == {"department": ASSISTING, "mode": "remote", "note": ""}


def test_a_hand_off_through_the_service_keeps_the_items_response_limit(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    """PA-002 (a fire hazard) gives two hours; the receiver of a hand-off gets no more."""
    case_id = report_via(service, actors)
    service.accept(case_id, actors["street"])
    service.whistle(case_id, actors["street"], lead="xf", duty_item="PA-002")
    clock.advance(STEP)
    service.hand_off(case_id, dept("xf"), "ga", "属治安问题")
    deadline = service.case(case_id)["obligations"]["ga"]["response_deadline"]
    assert deadline == clock.now() + timedelta(hours=2)
