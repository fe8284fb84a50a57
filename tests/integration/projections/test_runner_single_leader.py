"""Two runners of one projection on one views database: one leads, the other stands by, and every
event is applied exactly once (on SQLite and PostgreSQL views).

Without the lock both would pull from the projection's durable consumer, and a batch committed
after a later one would be skipped as already applied. `CountingProjection` halts on an event
applied twice or out of order, and its counts show one skipped.
"""

from __future__ import annotations

import asyncio
from functools import partial

import pytest
from nats.aio.client import Client
from sqlalchemy import Engine

from infra.event_codec import EventEnvelope
from infra.leader import projection_lock
from projections.runner import ProjectorRunner, RunnerOptions
from tests.integration.projections.counting import CountingProjection, count_rows, expected_counts
from tests.integration.projections.support import (
    eventually,
    halted,
    position,
    publish_envelopes,
    reached,
    running,
)

pytestmark = pytest.mark.asyncio

NAME = "shared"


def runner(nc: Client, engine: Engine) -> ProjectorRunner:
    projection = CountingProjection(NAME, delay=0.001)  # slow: batches overlap in time
    projection.create_tables(engine)
    options = RunnerOptions(batch=20)
    return ProjectorRunner(
        nc, engine, [projection], options, locks=partial(projection_lock, engine)
    )


async def test_a_second_runner_stands_by_and_takes_over(
    nc: Client, views_engine: Engine, corpus: list[EventEnvelope]
) -> None:
    half = len(corpus) // 2
    js = nc.jetstream()
    await publish_envelopes(js, corpus[:half])
    async with running(runner(nc, views_engine)) as stop_first:
        await eventually(lambda: position(views_engine, NAME).applied > 0, "the first to lead")
        async with running(runner(nc, views_engine)):
            await eventually(
                reached(views_engine, NAME, corpus[half - 1].notification_id), "the first half"
            )
            stop_first.set()  # the leader goes; the standby must take the second half
            await asyncio.sleep(0.5)
            await publish_envelopes(js, corpus[half:])
            await eventually(
                reached(views_engine, NAME, corpus[-1].notification_id), "the standby to catch up"
            )
    assert not halted(views_engine, NAME)(), "an event was applied twice or out of order"
    assert count_rows(views_engine, NAME) == expected_counts(corpus)


async def test_two_runners_started_together_apply_each_event_once(
    nc: Client, views_engine: Engine, corpus: list[EventEnvelope]
) -> None:
    await publish_envelopes(nc.jetstream(), corpus)
    async with running(runner(nc, views_engine)), running(runner(nc, views_engine)):
        await eventually(reached(views_engine, NAME, corpus[-1].notification_id), "both runners")
    assert not halted(views_engine, NAME)(), "an event was applied twice or out of order"
    assert count_rows(views_engine, NAME) == expected_counts(corpus)
