"""Duty-list revisions (动态调整) are stored events with an effective date; cases keep their version.

The revision is published on Tuesday 3 March 2026 and takes effect on Monday 9 March (China time): it
tightens CG-001 (5 → 2 working days, 24 → 12 h) and ZH-002 (3 → 1), adds CG-018 and retires CG-002.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from uuid import UUID

import pytest

from domain.actors import Actor
from domain.clock import CHINA_TZ, ManualClock
from domain.errors import DomainError, IllegalState, InvalidInput, WrongActor
from domain.reference import CooperationMode, DutyItem, Section, StreetRole
from domain.service import CaseService
from infra.settings import Settings
from infra.store import open_service
from tests.integration.builders import drive, fingerprint, notifications, report_case
from tests.unit.builders import ASSISTING, ITEM, LEAD, dept

EFFECTIVE = date(2026, 3, 9)
IN_FORCE = datetime(2026, 3, 9, tzinfo=CHINA_TZ)  # 00:00 in Beijing on the effective date
RETIRED = "CG-002"  # cgzf leads; 3 working days; retired by the revision
SHORTENED = "ZH-002"  # cgzf leads; 3 working days, 1 after the revision
V1_DAYS = 3  # neither version 2's limits nor the 5-day default for a case without an item
NEW_ITEM = DutyItem(
    code="CG-018",
    section=Section.URBAN_MANAGEMENT,
    name="配合做好共享单车停放秩序管理",
    street_role=StreetRole.ASSIST,
    lead_department="jt",
    cooperating_departments=("cgzf",),
    cooperation_mode=CooperationMode.INFORMATION_SHARING,
    legal_basis="《北京市非机动车管理条例》",
    response_limit_hours=24,
    handling_limit_working_days=3,
)


def _shortened(service: CaseService) -> DutyItem:
    item = service.reference.duty_items[SHORTENED]
    assert (item.lead_department, item.handling_limit_working_days) == (LEAD, V1_DAYS)
    return replace(item, handling_limit_working_days=1)


def _whistled_under(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor], item: str
) -> UUID:
    case_id = drive(service, clock, actors, "accepted").case_id
    service.whistle(case_id, actors["street"], lead=LEAD, duty_item=item)
    return case_id


def _tightened(service: CaseService) -> DutyItem:
    item = service.reference.duty_items[ITEM]
    assert (item.handling_limit_working_days, item.response_limit_hours) == (5, 24)
    return replace(item, handling_limit_working_days=2, response_limit_hours=12)


def _revise(service: CaseService, actors: dict[str, Actor], **changes: object) -> int:
    revision: dict[str, object] = {
        "effective": EFFECTIVE,
        "added": [NEW_ITEM],
        "changed": [_tightened(service), _shortened(service)],
        "retired": [RETIRED],
        "reason": "2026 年第一次动态调整",
    }
    revision.update(changes)
    return service.revise_duty_list(actors["centre"], **revision)


@pytest.fixture
def other(store_settings: Settings, clock: ManualClock) -> Iterator[CaseService]:
    """A second service on the same store, as another process would have it."""
    svc = open_service(store_settings, clock)
    yield svc
    svc.close()


def _whistle(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor], item: str, lead: str = LEAD
) -> int:
    """Reports, accepts and whistles a case under `item`; returns the duty-list version it recorded."""
    case_id = drive(service, clock, actors, "accepted").case_id
    service.whistle(case_id, actors["street"], lead=lead, duty_item=item)
    return int(service.case(case_id)["duty_list_version"])


def test_a_revision_is_stored_and_read_back_by_effective_date(
    service: CaseService,
    other: CaseService,
    clock: ManualClock,
    actors: dict[str, Actor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other.duty_items()  # the other service has read the list before the revision
    clock.advance(timedelta(days=1))
    assert _revise(service, actors) == 2

    (row,) = [n for n in notifications(service) if n.topic == "whistleloop.duty_list.Revised"]
    assert (row.originator_id, row.originator_version) == (service.duty_list_id, 2)
    for reader in (service, other):
        version, before = reader.duty_items(IN_FORCE - timedelta(microseconds=1))
        assert version == 1
        assert {i.code: i for i in before} == service.reference.duty_items
        version, after = reader.duty_items(IN_FORCE)
        items = {i.code: i for i in after}
        assert version == 2
        assert items[ITEM] == _tightened(service)
        assert items[NEW_ITEM.code] == NEW_ITEM
        assert RETIRED not in items
        assert len(items) == len(before)


def test_cases_keep_the_version_they_were_whistled_under(
    service: CaseService, store_settings: Settings, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    street, lead = actors["street"], dept(LEAD)
    assert service.reference.duty_items[RETIRED].handling_limit_working_days == V1_DAYS
    early = _whistled_under(service, clock, actors, SHORTENED)  # before the revision exists
    clock.advance(timedelta(days=1))
    _revise(service, actors)
    clock.advance(timedelta(days=2))
    between = _whistled_under(service, clock, actors, SHORTENED)  # published, not yet in force
    retiring = _whistled_under(service, clock, actors, RETIRED)  # in force until 9 March
    clock.set(IN_FORCE + timedelta(hours=10))
    late = drive(service, clock, actors, "whistled").case_id  # CG-001 under version 2

    later = open_service(store_settings, clock)  # opened after the revision took effect
    try:
        for case_id in (early, between, retiring):
            assert later.case(case_id)["duty_list_version"] == 1
            later.report_in(case_id, lead, "on_site")
            later.report_handling(case_id, lead, "resolved")
            rework_at = clock.advance(timedelta(minutes=30))
            later.send_back_for_rework(case_id, street, "现场仍有残留")
            assert later.case(case_id)["handling_deadline"] == (
                later.calendar.add_working_days(rework_at, V1_DAYS)  # as version 1 had the item
            )
            later.report_handling(case_id, lead, "resolved")
            later.close_case(case_id, street)
            reopen_at = clock.advance(timedelta(hours=1))
            later.reopen(case_id, street, "群众反映问题复发")
            assert later.case(case_id)["handling_deadline"] == (
                later.calendar.add_working_days(reopen_at, V1_DAYS)
            )
        whistled_at = later.history(late)[2]["at"]
        state = later.case(late)
    finally:
        later.close()

    assert (state["duty_list_version"], state["duty_item"]) == (2, ITEM)
    assert state["handling_deadline"] == service.calendar.add_working_days(whistled_at, 2)
    assert state["obligations"][LEAD]["response_deadline"] == whistled_at + timedelta(hours=12)
    distinct = {service.calendar.add_working_days(rework_at, d) for d in (1, V1_DAYS, 5)}
    assert len(distinct) == 3, "version 1, version 2 and the default limit must differ"


def test_items_are_whistled_only_while_the_list_has_them(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    clock.advance(timedelta(days=1))
    _revise(service, actors)
    assert _whistle(service, clock, actors, RETIRED) == 1  # still listed until 9 March
    with pytest.raises(InvalidInput) as not_yet:
        _whistle(service, clock, actors, NEW_ITEM.code, lead="jt")
    assert not_yet.value.code == "unknown_duty_item"

    clock.set(IN_FORCE)
    assert _whistle(service, clock, actors, NEW_ITEM.code, lead="jt") == 2
    case_id = drive(service, clock, actors, "accepted").case_id
    rows = fingerprint(service)
    for refused in (
        lambda: service.whistle(case_id, actors["street"], lead=LEAD, duty_item=RETIRED),
        lambda: report_case(service, actors, suggested_item=RETIRED),
    ):
        with pytest.raises(InvalidInput) as retired:
            refused()
        assert retired.value.code == "unknown_duty_item"
    assert fingerprint(service) == rows
    assert service.case(case_id)["status"] == "accepted"


@pytest.mark.parametrize(
    ("changes", "error", "code"),
    [
        ({"actor": "street"}, WrongActor, "command_centre_only"),
        ({"effective": date(2025, 12, 31)}, IllegalState, "revision_predates_current"),
        ({"changed": [replace(NEW_ITEM, code="CG-099")]}, InvalidInput, "unknown_duty_item"),
        ({"retired": ["CG-099"]}, InvalidInput, "unknown_duty_item"),
        ({"added": [replace(NEW_ITEM, code=ITEM)]}, InvalidInput, "item_exists"),
        (
            {"added": [replace(NEW_ITEM, lead_department="nosuch")]},
            InvalidInput,
            "unknown_department",
        ),
        ({"added": [], "changed": [], "retired": []}, InvalidInput, "empty_revision"),
    ],
    ids=["not-command-centre", "predates", "change-unknown", "retire-unknown", "add-existing",
         "unknown-department", "empty"],
)  # fmt: skip
def test_a_refused_revision_leaves_the_store_unchanged(
    changes: dict[str, object],
    error: type[DomainError],
    code: str,
    service: CaseService,
    store_settings: Settings,
    clock: ManualClock,
    actors: dict[str, Actor],
) -> None:
    rows = fingerprint(service)
    changes = dict(changes)  # the parameter is shared by both stores' runs
    actor = actors[str(changes.pop("actor", "centre"))]
    revision: dict[str, object] = {
        "effective": EFFECTIVE,
        "added": [NEW_ITEM],
        "changed": [],
        "retired": [],
        "reason": "调整",
        **changes,
    }
    with pytest.raises(DomainError) as refused:
        service.revise_duty_list(actor, **revision)
    assert (type(refused.value), refused.value.code) == (error, code)
    assert fingerprint(service) == rows
    fresh = open_service(store_settings, clock)
    try:
        assert fresh.duty_items(IN_FORCE)[0] == 1
    finally:
        fresh.close()


# --- what another service sees ----------------------------------------------------------------


def test_no_service_whistles_a_retired_item_after_the_effective_date(
    service: CaseService,
    other: CaseService,
    clock: ManualClock,
    actors: dict[str, Actor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other.duty_items()
    clock.advance(timedelta(days=1))
    _revise(service, actors)
    clock.set(IN_FORCE + timedelta(hours=1))
    with pytest.raises(InvalidInput) as retired:
        _whistle(other, clock, actors, RETIRED)
    assert retired.value.code == "unknown_duty_item"


def test_rework_deadline_uses_the_whistled_version_in_every_service(
    service: CaseService,
    other: CaseService,
    clock: ManualClock,
    actors: dict[str, Actor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other.duty_items()
    clock.advance(timedelta(days=1))
    _revise(service, actors, changed=[replace(_tightened(service), handling_limit_working_days=7)])
    clock.set(IN_FORCE + timedelta(hours=1))
    case_id = drive(service, clock, actors, "handled").case_id
    assert service.case(case_id)["duty_list_version"] == 2

    rework_at = clock.advance(timedelta(hours=1))
    other.send_back_for_rework(case_id, actors["street"], "现场仍有残留")
    assert other.case(case_id)["handling_deadline"] == other.calendar.add_working_days(rework_at, 7)


def test_a_revision_cannot_take_effect_in_the_past(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    case_id = drive(service, clock, actors, "whistled").case_id
    whistled_at = service.history(case_id)[2]["at"]
    clock.advance(timedelta(days=1))
    try:
        _revise(service, actors, effective=date(2026, 3, 1))
    except DomainError:
        return
    assert service.duty_items(whistled_at)[0] == service.case(case_id)["duty_list_version"]


def test_assisting_departments_outside_the_item_are_admitted(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    """Only the lead must be named by the item; assisting departments are the street's choice."""
    case_id = drive(service, clock, actors, "accepted").case_id
    service.whistle(
        case_id, actors["street"], lead=LEAD, assisting=(ASSISTING, "sw"), duty_item=ITEM
    )
    assert set(service.case(case_id)["obligations"]) == {LEAD, ASSISTING, "sw"}
