"""The duty list (职责清单): published once, revised with effective dates, every version kept."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from domain.actors import Actor
from domain.clock import ManualClock
from domain.duty_list import DutyList
from domain.errors import IllegalState, InvalidInput, WrongActor
from domain.reference import DutyItem, ReferenceData
from domain.service import CaseService
from tests.unit.builders import ITEM, LEAD, assert_refused, beijing, whistle_via

DISTRICT = "朝阳示范区"
PUBLISHED_AT = datetime(2025, 12, 20, 2, 0, tzinfo=UTC)


@pytest.fixture
def duty_list(reference: ReferenceData, actors: dict[str, Actor]) -> DutyList:
    published = DutyList.publish(
        actors["centre"],
        PUBLISHED_AT,
        DISTRICT,
        1,
        date(2026, 1, 1),
        list(reference.duty_items.values()),
    )
    published.collect_events()
    return published


def new_item(reference: ReferenceData, code: str = "CG-018") -> DutyItem:
    return dataclasses.replace(reference.duty_items[ITEM], code=code, name="共享单车乱停放治理")


def test_publish(duty_list: DutyList, reference: ReferenceData) -> None:
    assert duty_list.id == DutyList.id_for(DISTRICT)
    assert duty_list.current_version == 1
    version, items = duty_list.version_at(beijing(2026, 3, 2, 9))
    assert (version, set(items)) == (1, set(reference.duty_items))
    assert DutyItem.from_state(items[ITEM]) == reference.duty_items[ITEM]


def test_published_items_are_plain_json(reference: ReferenceData, actors: dict[str, Actor]) -> None:
    items = list(reference.duty_items.values())
    published = DutyList.publish(
        actors["centre"], PUBLISHED_AT, DISTRICT, 1, date(2026, 1, 1), items
    )
    [event] = published.collect_events()
    assert isinstance(event, DutyList.Published)
    assert json.loads(json.dumps(event.items)) == event.items
    assert event.effective_date == "2026-01-01"


def test_publish_needs_the_command_centre_and_items(
    reference: ReferenceData, actors: dict[str, Actor]
) -> None:
    items = list(reference.duty_items.values())
    with pytest.raises(WrongActor) as wrong:
        DutyList.publish(actors["street"], PUBLISHED_AT, DISTRICT, 1, date(2026, 1, 1), items)
    assert wrong.value.code == "command_centre_only"
    with pytest.raises(InvalidInput) as empty:
        DutyList.publish(actors["centre"], PUBLISHED_AT, DISTRICT, 1, date(2026, 1, 1), [])
    assert empty.value.code == "empty_duty_list"


def test_revise_adds_changes_and_retires_from_its_effective_date(
    duty_list: DutyList, reference: ReferenceData, actors: dict[str, Actor]
) -> None:
    changed = dataclasses.replace(reference.duty_items[ITEM], handling_limit_working_days=3)
    version = duty_list.revise(
        actors["centre"],
        beijing(2026, 5, 20, 10),
        effective=date(2026, 6, 1),
        added=[new_item(reference)],
        changed=[changed],
        retired=["CG-002"],
        reason="区政府第 12 次常务会议",
    )
    [event] = duty_list.collect_events()
    assert isinstance(event, DutyList.Revised)
    assert (version, duty_list.current_version, event.effective_date) == (2, 2, "2026-06-01")

    before_version, before = duty_list.version_at(beijing(2026, 5, 31, 23, 59))
    after_version, after = duty_list.version_at(beijing(2026, 6, 1, 0, 1))
    assert (before_version, after_version) == (1, 2)
    assert set(after) - set(before) == {"CG-018"}
    assert set(before) - set(after) == {"CG-002"}
    assert before[ITEM]["handling_limit_working_days"] == 5
    assert after[ITEM]["handling_limit_working_days"] == 3
    assert len(after) == len(before)  # one added, one retired


def test_the_version_in_force_follows_the_date_in_china(
    duty_list: DutyList, reference: ReferenceData, actors: dict[str, Actor]
) -> None:
    """16:30 UTC on 31 May is already 1 June in Beijing."""
    duty_list.revise(
        actors["centre"],
        PUBLISHED_AT,
        effective=date(2026, 6, 1),
        retired=["CG-002"],
        reason="调整",
    )
    assert duty_list.version_at(datetime(2026, 5, 31, 15, 59, tzinfo=UTC))[0] == 1
    assert duty_list.version_at(datetime(2026, 5, 31, 16, 0, tzinfo=UTC))[0] == 2


def test_item_lookups_by_moment_and_by_version(
    duty_list: DutyList, reference: ReferenceData, actors: dict[str, Actor]
) -> None:
    duty_list.revise(
        actors["centre"], PUBLISHED_AT, effective=date(2026, 6, 1), retired=[ITEM], reason="调整"
    )
    assert duty_list.item_at(ITEM, beijing(2026, 5, 1, 9)) == (1, reference.duty_items[ITEM])
    with pytest.raises(InvalidInput) as unknown:
        duty_list.item_at(ITEM, beijing(2026, 6, 2, 9))
    assert unknown.value.code == "unknown_duty_item"
    assert duty_list.item_in_version(ITEM, 1) == reference.duty_items[ITEM]
    with pytest.raises(IllegalState) as missing:  # a case can only cite an item its version had
        duty_list.item_in_version(ITEM, 2)
    assert missing.value.code == "unknown_duty_item_version"
    assert duty_list.item_in_version(None, 1) is None


def test_before_its_effective_date_the_first_version_answers(duty_list: DutyList) -> None:
    """Backfilled cases older than the list still need items; version 1 is the best there is."""
    assert duty_list.version_at(beijing(2025, 12, 25, 9))[0] == 1


def test_two_revisions_on_one_day_the_later_wins(
    duty_list: DutyList, reference: ReferenceData, actors: dict[str, Actor]
) -> None:
    centre = actors["centre"]
    duty_list.revise(
        centre, PUBLISHED_AT, effective=date(2026, 6, 1), retired=["CG-002"], reason="一"
    )
    duty_list.revise(
        centre, PUBLISHED_AT, effective=date(2026, 6, 1), retired=["CG-003"], reason="二"
    )
    version, items = duty_list.version_at(beijing(2026, 6, 1, 9))
    assert version == 3
    assert not {"CG-002", "CG-003"} & set(items)


REVISION_ERRORS = [
    pytest.param(
        "centre",
        {"effective": date(2026, 6, 1), "retired": ["XX-999"]},
        InvalidInput,
        "unknown_duty_item",
        id="retire-unknown-item",
    ),
    pytest.param(
        "centre",
        {"effective": date(2026, 6, 1), "changed": ["new"]},
        InvalidInput,
        "unknown_duty_item",
        id="change-unknown-item",
    ),
    pytest.param(
        "centre",
        {"effective": date(2026, 6, 1), "added": ["existing"]},
        InvalidInput,
        "item_exists",
        id="add-existing-item",
    ),
    pytest.param(
        "centre",
        {"effective": date(2026, 6, 1), "added": ["new", "new"]},
        InvalidInput,
        "item_repeated",
        id="add-the-same-item-twice",
    ),
    pytest.param(
        "centre",
        {"effective": date(2026, 6, 1), "changed": ["existing"], "retired": ["CG-001"]},
        InvalidInput,
        "item_repeated",
        id="change-and-retire-one-item",
    ),
    pytest.param(
        "centre",
        {"effective": date(2025, 12, 31), "retired": ["CG-002"]},
        IllegalState,
        "revision_predates_current",
        id="revision-predating-the-list",
    ),
    pytest.param(
        "centre",
        {"effective": date(2026, 6, 1)},
        InvalidInput,
        "empty_revision",
        id="nothing-revised",
    ),
    pytest.param(
        "centre",
        {"effective": date(2026, 6, 1), "retired": ["CG-002"], "reason": "  "},
        InvalidInput,
        "empty_revision",
        id="no-reason",
    ),
    pytest.param(
        "street",
        {"effective": date(2026, 6, 1), "retired": ["CG-002"]},
        WrongActor,
        "command_centre_only",
        id="street-revises",
    ),
]


@pytest.mark.parametrize(("who", "revision", "error", "code"), REVISION_ERRORS)
def test_revision_refused(
    duty_list: DutyList,
    reference: ReferenceData,
    actors: dict[str, Actor],
    who: str,
    revision: dict[str, object],
    error: type[InvalidInput],
    code: str,
) -> None:
    items = {"new": new_item(reference), "existing": reference.duty_items[ITEM]}
    for key in ("added", "changed"):
        if key in revision:
            revision[key] = [items[name] for name in revision[key]]  # type: ignore[attr-defined]
    kwargs: dict[str, object] = {"reason": "调整", **revision}
    assert_refused(
        lambda: duty_list.revise(actors[who], PUBLISHED_AT, **kwargs),  # type: ignore[arg-type]
        duty_list,
        error,
        code,
    )


def test_a_revision_cannot_predate_the_latest_version(
    duty_list: DutyList, reference: ReferenceData, actors: dict[str, Actor]
) -> None:
    centre = actors["centre"]
    duty_list.revise(
        centre, PUBLISHED_AT, effective=date(2026, 6, 1), retired=["CG-002"], reason="一"
    )
    assert_refused(
        lambda: duty_list.revise(
            centre, PUBLISHED_AT, effective=date(2026, 5, 1), retired=["CG-003"], reason="二"
        ),
        duty_list,
        IllegalState,
        "revision_predates_current",
    )


def test_a_case_keeps_the_version_it_was_whistled_under(
    service: CaseService, clock: ManualClock, reference: ReferenceData, actors: dict[str, Actor]
) -> None:
    """A rework after the item's limit was shortened still gets the limit the case was given."""
    before = whistle_via(service, actors, clock)
    shorter = dataclasses.replace(reference.duty_items[ITEM], handling_limit_working_days=1)
    version = service.revise_duty_list(
        actors["centre"], effective=clock.now().date(), changed=[shorter], reason="提速"
    )
    after = whistle_via(service, actors, clock)
    assert (version, service.case(before)["duty_list_version"]) == (2, 1)
    assert service.case(after)["duty_list_version"] == 2

    for case_id in (before, after):
        service.report_in(case_id, Actor.of("department", LEAD), "on_site")
        service.report_handling(case_id, Actor.of("department", LEAD), "resolved")
    clock.advance(timedelta(minutes=5))
    service.send_back_for_rework(before, actors["street"], "仍有残留")
    service.send_back_for_rework(after, actors["street"], "仍有残留")
    calendar = service.calendar
    assert service.case(before)["handling_deadline"] == calendar.add_working_days(clock.now(), 5)
    assert service.case(after)["handling_deadline"] == calendar.add_working_days(clock.now(), 1)


def test_a_revision_cannot_take_effect_before_today(
    duty_list: DutyList, actors: dict[str, Actor]
) -> None:
    """Cases already whistled under the list in force must not find a later version in force then."""
    assert_refused(
        lambda: duty_list.revise(
            actors["centre"],
            beijing(2026, 6, 10, 9),
            effective=date(2026, 6, 9),
            retired=[ITEM],
            reason="调整",
        ),
        duty_list,
        IllegalState,
        "revision_predates_current",
    )
    duty_list.revise(
        actors["centre"],
        beijing(2026, 6, 10, 9),
        effective=date(2026, 6, 10),
        retired=[ITEM],
        reason="调整",
    )
    assert duty_list.current_version == 2
