"""The runner applies each event exactly once, and a redelivery or a re-published event is harmless."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from sqlalchemy import Engine

from infra.event_codec import HEADER_MSG_ID, EventEnvelope
from infra.nats.streams import EVENTS_STREAM
from projections.runner import ProjectorRunner, RunnerOptions, consumer_name
from tests.integration.projections.counting import CountingProjection, count_rows, expected_counts
from tests.integration.projections.support import (
    eventually,
    position,
    publish_envelopes,
    reached,
    running,
)

pytestmark = pytest.mark.asyncio

OPTIONS = RunnerOptions(batch=64, fetch_timeout=0.2, halt_poll=0.1)


async def test_each_event_applied_once_and_tracking_is_the_last_id(
    nc: Client, views_engine: Engine, corpus: list[EventEnvelope]
) -> None:
    events = corpus[:600]
    seqs = await publish_envelopes(nc.jetstream(), events)
    projection = CountingProjection("once")
    projection.create_tables(views_engine)

    async with running(ProjectorRunner(nc, views_engine, [projection], OPTIONS)):
        await eventually(reached(views_engine, "once", events[-1].notification_id), "catch-up")

    assert count_rows(views_engine, "once") == expected_counts(events)
    tracked = position(views_engine, "once")
    assert tracked.last_notification_id == events[-1].notification_id
    assert tracked.last_stream_seq == seqs[-1]
    duty_list_events = sum(1 for e in events if e.aggregate != "case")
    assert (tracked.applied, tracked.ignored) == (len(events) - duty_list_events, duty_list_events)


async def test_redelivery_and_republished_events_are_skipped(
    nc: Client, views_engine: Engine, corpus: list[EventEnvelope]
) -> None:
    js = nc.jetstream()
    first, later = corpus[:300], corpus[300:400]
    await publish_envelopes(js, first)
    projection = CountingProjection("redeliver")
    projection.create_tables(views_engine)
    runner = ProjectorRunner(nc, views_engine, [projection], OPTIONS)
    async with running(runner):
        await eventually(reached(views_engine, "redeliver", first[-1].notification_id), "catch-up")
    applied_once = count_rows(views_engine, "redeliver")

    # The server hands everything out again (as after a consumer reset or lost acks) ...
    await js.reset_consumer(EVENTS_STREAM, consumer_name("redeliver"), seq=1)
    # ... and a relay re-sends old events with new message ids (as after its dedupe window).
    resent = [
        (e.subject, e.body(), {**e.headers(), HEADER_MSG_ID: f"resent:{e.notification_id}"})
        for e in first[100:150]
    ]
    for subject, body, headers in resent:
        await js.publish(subject, body, headers=headers, timeout=10)
    await publish_envelopes(js, later)
    last_seq = len(first) + len(resent) + len(later)

    async with running(runner):
        await eventually(
            lambda: position(views_engine, "redeliver").last_stream_seq == last_seq,
            "the redelivered stream to be consumed",
        )
        info = await js.consumer_info(EVENTS_STREAM, consumer_name("redeliver"))
        # Everything really came again from seq 1 (the runner did not jump past the tracked position).
        assert info.delivered is not None
        assert info.delivered.consumer_seq == last_seq

    # CountingProjection raises (and would halt) on any double apply; nothing halted or changed.
    assert count_rows(views_engine, "redeliver") == expected_counts(first + later)
    assert applied_once == expected_counts(first)
    assert position(views_engine, "redeliver").last_notification_id == later[-1].notification_id
