"""kill -9 of the projector mid-batch, repeatedly: after a restart the read model equals a clean replay."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from nats.aio.client import Client
from sqlalchemy import Engine

from infra.event_codec import EventEnvelope
from infra.nats.server import NatsServer
from infra.nats.streams import EVENTS_STREAM
from infra.settings import Settings
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

ROOT = Path(__file__).resolve().parents[3]
KILLS = 5
BATCH = 100
DELAY = 0.001  # seconds per event while killing: most of the time is spent inside a batch


@contextmanager
def worker(
    server: NatsServer, settings: Settings, name: str, delay: float
) -> Iterator[subprocess.Popen[bytes]]:
    """The projector as a real process; killed on the way out whatever happens."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.projections.worker",
            server.url,
            settings.views_url(),
            name,
            str(BATCH),
            str(delay),
        ],
        cwd=ROOT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _progress_from(engine: Engine, name: str) -> Callable[[], bool]:
    start = position(engine, name).last_stream_seq
    return lambda: position(engine, name).last_stream_seq > start


async def test_kill_9_mid_batch_and_restart_equals_a_clean_replay(
    nats_server: NatsServer,
    nc: Client,
    views_settings: Settings,
    views_engine: Engine,
    corpus: list[EventEnvelope],
) -> None:
    js = nc.jetstream()
    await publish_envelopes(js, corpus)
    last = corpus[-1].notification_id
    pending_at_kill = []
    for _ in range(KILLS):
        with worker(nats_server, views_settings, "killed", DELAY) as process:
            await eventually(
                _progress_from(views_engine, "killed"), "the restarted projector to make progress"
            )
            await asyncio.sleep(random.uniform(0.0, 0.15))
            assert position(views_engine, "killed").last_notification_id < last, "finished early"
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        info = await js.consumer_info(EVENTS_STREAM, consumer_name("killed"))
        pending_at_kill.append(info.num_ack_pending or 0)
    assert any(pending_at_kill), "no kill landed between a fetch and its ack"

    with worker(nats_server, views_settings, "killed", 0.0) as process:
        await eventually(reached(views_engine, "killed", last), "the last restart to catch up")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0

    replay = CountingProjection("replay")
    replay.create_tables(views_engine)
    async with running(ProjectorRunner(nc, views_engine, [replay], RunnerOptions(batch=500))):
        await eventually(reached(views_engine, "replay", last), "the clean replay")

    assert count_rows(views_engine, "killed") == count_rows(views_engine, "replay")
    assert count_rows(views_engine, "replay") == expected_counts(corpus)
    assert position(views_engine, "killed") == position(views_engine, "replay")
