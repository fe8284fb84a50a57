"""Bad input halts only the projection that met it, at that sequence, until an operator acts."""

from __future__ import annotations

import logging

import pytest
from nats.aio.client import Client
from sqlalchemy import Engine, select

from infra.event_codec import EventEnvelope
from infra.settings import Settings
from projections import tracking
from projections.control import NotHalted, resume, skip
from projections.runner import ProjectorRunner, RunnerOptions
from projections.views_db import projection_skips
from tests.integration.projections.counting import CountingProjection, count_rows, expected_counts
from tests.integration.projections.support import (
    eventually,
    halted,
    position,
    publish_envelopes,
    reached,
    running,
    status,
)

pytestmark = pytest.mark.asyncio

OPTIONS = RunnerOptions(batch=50, fetch_timeout=0.2, halt_poll=0.1)
GARBAGE_SUBJECT = "wl.ev.nowhere.not-a-case.Bogus"


async def test_garbage_halts_the_projection_until_the_sequence_is_skipped(
    nc: Client,
    views_settings: Settings,
    views_engine: Engine,
    corpus: list[EventEnvelope],
    caplog: pytest.LogCaptureFixture,
) -> None:
    js = nc.jetstream()
    before, after = corpus[:120], corpus[120:260]
    await publish_envelopes(js, before)
    garbage = await js.publish(GARBAGE_SUBJECT, b"\x00 not an event", timeout=10)
    await publish_envelopes(js, after)
    every = CountingProjection("every")  # consumes all of wl.ev.>
    streets = CountingProjection("streets", subjects=("wl.ev.jianwai.>", "wl.ev.district.>"))
    for projection in (every, streets):
        projection.create_tables(views_engine)

    async with running(ProjectorRunner(nc, views_engine, [every, streets], OPTIONS)):
        await eventually(halted(views_engine, "every"), "the projection to halt")
        await eventually(
            reached(views_engine, "streets", after[-1].notification_id),
            "the other projection to go on",
        )
        row = status(views_engine, "every")
        assert row is not None
        assert row.halted_at_seq == garbage.seq
        assert row.halted_subject == GARBAGE_SUBJECT
        assert row.error is not None
        assert "missing whistleloop headers" in row.error
        assert row.halted_notification_id is None
        loud = [
            r
            for r in caplog.records
            if r.levelno == logging.ERROR and r.__dict__.get("stream_seq") == garbage.seq
        ]
        assert loud, "the halt must be logged at error level with its sequence"
        # Halted, not spinning: nothing after the garbage is applied, however long it waits.
        stuck = position(views_engine, "every")
        assert (stuck.last_stream_seq, stuck.last_notification_id) == (
            garbage.seq - 1,
            before[-1].notification_id,
        )
        assert count_rows(views_engine, "every") == expected_counts(before)
        assert count_rows(views_engine, "streets") == expected_counts(before + after)

        with pytest.raises(NotHalted):
            skip(views_settings, "every", garbage.seq + 1)  # only the sequence it halted at
        skip(views_settings, "every", garbage.seq)
        await eventually(
            reached(views_engine, "every", after[-1].notification_id),
            "the skipped projection to continue",
        )

    assert count_rows(views_engine, "every") == expected_counts(before + after)
    after_skip = status(views_engine, "every")
    assert after_skip is not None
    assert after_skip.state == tracking.RUNNING
    with views_engine.connect() as conn:
        skips = conn.execute(select(projection_skips.c.name, projection_skips.c.stream_seq)).all()
    assert [tuple(s) for s in skips] == [("every", garbage.seq)]


async def test_an_apply_that_raises_halts_until_resumed_after_a_fix(
    nc: Client, views_settings: Settings, views_engine: Engine, corpus: list[EventEnvelope]
) -> None:
    events = corpus[:300]
    seqs = await publish_envelopes(nc.jetstream(), events)
    bad = events[170]
    buggy = CountingProjection("buggy", fail_on={bad.notification_id})
    healthy = CountingProjection("healthy")
    for projection in (buggy, healthy):
        projection.create_tables(views_engine)

    async with running(ProjectorRunner(nc, views_engine, [buggy, healthy], OPTIONS)):
        await eventually(halted(views_engine, "buggy"), "the buggy projection to halt")
        await eventually(
            reached(views_engine, "healthy", events[-1].notification_id),
            "the healthy projection to finish",
        )
        row = status(views_engine, "buggy")
        assert row is not None
        assert row.halted_at_seq == seqs[170]
        assert row.halted_notification_id == bad.notification_id
        assert row.halted_case_id == bad.aggregate_id
        assert row.error is not None
        assert "simulated bug" in row.error
        # The events before the bad one in its batch were committed; the bad one left no trace.
        assert count_rows(views_engine, "buggy") == expected_counts(events[:170])
        assert position(views_engine, "buggy").last_stream_seq == seqs[169]

        buggy.fail_on.clear()  # the fix is deployed
        resume(views_settings, "buggy")
        await eventually(
            reached(views_engine, "buggy", events[-1].notification_id),
            "the resumed projection to finish",
        )

    assert count_rows(views_engine, "buggy") == expected_counts(events)
    assert count_rows(views_engine, "healthy") == expected_counts(events)
    with pytest.raises(NotHalted):
        resume(views_settings, "buggy")
