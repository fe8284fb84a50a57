"""The event-store contract: what one store must give back, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from domain.actors import Actor
from domain.case import CASE_EVENT_TYPES, Case
from domain.case_rules import Status
from domain.clock import ManualClock
from domain.service import CaseService
from infra.settings import Settings
from infra.store import has_cases, open_service, store_stats
from tests.integration.builders import (
    CASE_EVENTS,
    case_events,
    drive,
    notifications,
    report_case,
    run_full_loop,
    topic_of,
)
from tests.unit.builders import ASSISTING, ITEM, LEAD, RECEIVER, dept

DUTY_LIST_PUBLISHED = "whistleloop.duty_list.Published"


def test_full_loop_reads_back_the_same_from_a_new_service(
    service: CaseService, store_settings: Settings, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    timeline = run_full_loop(service, clock, actors)
    state, history = service.case(timeline.case_id), service.history(timeline.case_id)

    assert state["version"] == timeline.version == len(history) == 22
    assert [record["version"] for record in history] == list(range(1, 23))
    assert state["status"] == Status.CLOSED
    assert (state["round"], state["rework_count"], state["consultations"]) == (2, 1, 1)
    assert state["lead_department"] == LEAD
    assert state["resident_rating"] == {"satisfaction": "satisfied", "solved": True}
    assert state["street_scores"] == {LEAD: 85, ASSISTING: 90}
    assert state["obligations"][RECEIVER]["active"] is False

    reopened = open_service(store_settings, clock)
    try:
        assert reopened.case(timeline.case_id) == state
        assert reopened.history(timeline.case_id) == history
    finally:
        reopened.close()


def test_every_event_is_stored_under_its_stable_topic(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    assert set(CASE_EVENTS) == {
        name for name, value in vars(Case).items() if isinstance(value, type) and name != "Event"
    }, "CASE_EVENTS must name every event class of Case"
    assert set(CASE_EVENT_TYPES) == set(CASE_EVENTS), "the domain's list, which projections use"
    run_full_loop(service, clock, actors)
    rejected = report_case(service, actors)
    service.reject(rejected, actors["street"], "not_public", "属私人纠纷")
    cancelled = report_case(service, actors)
    service.cancel(cancelled, actors["street"], "居民已自行解决")

    case_topics = set()
    for notification in notifications(service):
        event: Any = service.mapper.to_domain_event(notification)
        if notification.topic == DUTY_LIST_PUBLISHED:
            continue
        assert notification.topic == topic_of(type(event).__name__) == type(event).TOPIC
        case_topics.add(notification.topic)
    assert case_topics == {topic_of(name) for name in CASE_EVENTS}
    for record in service.history(rejected) + service.history(cancelled):
        assert record["topic"] == topic_of(record["type"])


def test_stored_timestamps_are_the_injected_clocks(
    service: CaseService, store_settings: Settings, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    timeline = run_full_loop(service, clock, actors)

    stored = case_events(service, timeline.case_id)
    assert [event.timestamp for event in stored] == timeline.times
    reopened = open_service(store_settings, clock)
    try:
        assert [r["at"] for r in reopened.history(timeline.case_id)] == timeline.times
        state = reopened.case(timeline.case_id)
    finally:
        reopened.close()
    assert state["reported_at"] == timeline.times[0]
    assert state["modified_at"] == timeline.times[-1] == clock.now()
    whistled_at = timeline.times[2]
    assert state["obligations"][ASSISTING]["whistled_at"] == whistled_at
    assert state["obligations"][ASSISTING]["response_deadline"] == whistled_at + timedelta(hours=24)


def test_notification_log_holds_events_in_commit_order(
    service: CaseService, store_settings: Settings, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    street = actors["street"]
    first = report_case(service, actors)
    other = open_service(store_settings, clock)  # a second writer on the same store
    try:
        second = report_case(other, actors, title="井盖缺失")
        other.accept(second, street)
        service.accept(first, street)
        service.whistle(first, street, lead=LEAD, duty_item=ITEM)
        other.cancel(second, street, "重复上报")
        service.report_in(first, dept(LEAD), "on_site")
    finally:
        other.close()
    expected = [
        (first, 1),
        (second, 1),
        (second, 2),
        (first, 2),
        (first, 3),
        (second, 3),
        (first, 4),
    ]

    log = notifications(service)
    assert log[0].topic == DUTY_LIST_PUBLISHED
    assert [(n.originator_id, n.originator_version) for n in log[1:]] == expected
    ids = [n.id for n in log]
    assert ids == sorted(set(ids))
    assert service.recorder.max_notification_id() == ids[-1]

    tail = service.recorder.select_notifications(start=ids[3], limit=100, inclusive_of_start=False)
    assert [n.id for n in tail] == ids[4:]
    closes = service.recorder.select_notifications(
        start=0, limit=100, topics=[topic_of("CaseCancelled"), topic_of("ReportedIn")]
    )
    assert [(n.originator_id, n.topic) for n in closes] == [
        (second, topic_of("CaseCancelled")),
        (first, topic_of("ReportedIn")),
    ]


def test_a_retried_report_with_the_same_idempotency_key_is_one_case(
    service: CaseService, store_settings: Settings, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    case_id = report_case(service, actors, idempotency_key="12345-20260302-0001")
    clock.advance(timedelta(minutes=1))
    again = report_case(service, actors, idempotency_key="12345-20260302-0001", title="重复来电")
    reopened = open_service(store_settings, clock)  # a cold cache: the store must answer
    try:
        from_elsewhere = report_case(reopened, actors, idempotency_key="12345-20260302-0001")
    finally:
        reopened.close()
    distinct = report_case(service, actors, idempotency_key="12345-20260302-0002")

    assert again == from_elsewhere == case_id != distinct
    reports = [n for n in notifications(service) if n.topic == topic_of("CaseReported")]
    assert Counter(n.originator_id for n in reports) == {case_id: 1, distinct: 1}
    assert service.case(case_id)["title"] == "楼顶违建"
    assert service.case(case_id)["version"] == 1
    assert report_case(service, actors) != report_case(service, actors)  # no key: two cases


def test_store_stats_count_events_by_topic(
    service: CaseService, store_settings: Settings, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    drive(service, clock, actors, "closed")
    original = drive(service, clock, actors, "whistled").case_id
    repeat = report_case(service, actors)
    service.reject(repeat, actors["street"], "duplicate", duplicate_of=original)

    stats = store_stats(service, store_settings)

    assert stats.by_topic == {
        DUTY_LIST_PUBLISHED: 1,
        topic_of("CaseReported"): 3,
        topic_of("CaseAccepted"): 2,
        topic_of("CaseRejected"): 1,
        topic_of("Whistled"): 2,
        topic_of("ReportedIn"): 1,
        topic_of("HandlingReported"): 1,
        topic_of("Closed"): 1,
    }
    assert (stats.events, stats.cases) == (12, 3)
    assert stats.last_notification_id == service.recorder.max_notification_id()
    assert stats.url.split(":", 1)[0] == store_settings.event_store_url().split(":", 1)[0]


def test_has_cases_once_a_case_is_reported(service: CaseService, actors: dict[str, Actor]) -> None:
    """What `up --simulate` asks before it backfills: the duty list alone is no case."""
    assert service.recorder.max_notification_id()  # the duty list is there
    assert not has_cases(service)
    report_case(service, actors)
    assert has_cases(service)
