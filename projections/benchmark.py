"""The projector runner's apply rate (no-op projection) against raw fetch+ack, same stream, same run."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from nats.js.api import AckPolicy, ConsumerConfig
from sqlalchemy import Connection, Engine, Table
from sqlalchemy.exc import OperationalError

from infra.benchmarks.relay import fill_stream
from infra.benchmarks.report import Result, Section, print_section
from infra.event_codec import EventEnvelope
from infra.nats.connection import connect
from infra.nats.server import NatsServer
from infra.settings import Settings
from projections.base import ApplyContext
from projections.runner import ProjectorRunner
from projections.tracking import read_position
from projections.views_db import open_views_engine

TARGET_RATIO = 0.50  # "runner overhead ≤ 2× raw fetch+ack"
RAW = "raw fetch(500) + ack (AckPolicy.ALL)"


class NoOpProjection:
    """Decodes and checks every event, writes nothing: what is left is the runner's own cost."""

    name = "bench_noop"
    tables: tuple[Table, ...] = ()
    subjects = ("wl.ev.>",)

    def apply(self, conn: Connection, envelope: EventEnvelope, context: ApplyContext) -> bool:
        return True


def runner_section(events: int) -> Section:
    with tempfile.TemporaryDirectory(prefix="wl-bench-runner-") as tmp:
        server = NatsServer(Path(tmp) / "nats").start()
        try:
            total = fill_stream(Path(tmp), server.url, events)
            raw = asyncio.run(_raw_fetch_ack(server.url, total))
            applied = asyncio.run(_runner(Settings(var_dir=Path(tmp) / "views"), server.url, total))
        finally:
            server.kill()
    section = Section(
        "Projector runner (issue 4)",
        "runner overhead ≤ 2× raw fetch+ack, i.e. apply rate ≥ 50 % of it.",
        _NOTES,
        [
            Result("NATS → SQLite views", RAW, total, raw, RAW, raw),
            Result(
                "NATS → SQLite views",
                "runner, no-op projection (decode, check, tracking row, ack)",
                total,
                applied,
                RAW,
                raw,
                TARGET_RATIO,
            ),
        ],
    )
    print_section(section)
    return section


async def _raw_fetch_ack(url: str, total: int) -> float:
    nc = await connect(url, name="bench-fetch")
    try:
        js = nc.jetstream()
        config = ConsumerConfig(durable_name="bench_raw", ack_policy=AckPolicy.ALL)
        subscription = await js.pull_subscribe("wl.ev.>", durable="bench_raw", config=config)
        started, seen = time.perf_counter(), 0
        while seen < total:
            batch = await subscription.fetch(500, timeout=5)
            await batch[-1].ack()
            seen += len(batch)
        return seen / (time.perf_counter() - started)
    finally:
        await nc.close()


async def _runner(settings: Settings, url: str, total: int) -> float:
    engine = open_views_engine(settings)
    nc = await connect(url, name="bench-runner")
    stop = asyncio.Event()
    runner = ProjectorRunner(nc, engine, [NoOpProjection()])
    started = time.perf_counter()
    task = asyncio.create_task(runner.run(stop))
    try:
        while _applied(engine) < total:
            await asyncio.sleep(0.01)
            if task.done():
                task.result()
        return total / (time.perf_counter() - started)
    finally:
        stop.set()
        await task
        await nc.close()
        engine.dispose()


def _applied(engine: Engine) -> int:
    try:
        with engine.connect() as conn:
            return read_position(conn, NoOpProjection.name).last_stream_seq
    except OperationalError:  # the runner has not created its tables yet
        return 0


_NOTES = """- The stream is filled by the relay with copies of the demo case (11 events each).
- *raw fetch+ack*: a durable pull consumer, `fetch(500)`, one ack per batch: the fastest this client
  reads the stream with delivery guarantees.
- *runner*: `ProjectorRunner` with a projection that does nothing, from a fresh durable consumer
  until its tracking row reaches the last sequence: each batch is decoded and checked
  (`EventEnvelope.from_message`), applied in one SQL transaction with the tracking row, then acked."""
