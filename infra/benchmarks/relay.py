"""The relay's throughput (store → WL_EVENTS, acked) against raw `publish_async`, same server, same run."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from eventsourcing.persistence import StoredEvent
from nats.js.api import StreamConfig

from domain.clock import ManualClock
from domain.service import CaseService
from infra.benchmarks.report import Result, Section, print_section
from infra.demo import run_demo_case
from infra.leader import NoLeaderLock
from infra.nats.connection import connect
from infra.nats.server import NatsServer
from infra.relay import Relay
from infra.settings import Settings
from infra.store import open_service

TARGET_RATIO = 0.50
RAW = "raw publish_async (acked)"


def relay_section(events: int) -> Section:
    with tempfile.TemporaryDirectory(prefix="wl-bench-relay-") as tmp:
        server = NatsServer(Path(tmp) / "nats").start()
        try:
            service = open_service(Settings(var_dir=Path(tmp) / "var"), _clock())
            try:
                body_size = _fill_store(service, events)
                raw = asyncio.run(_raw_publish(server.url, events, body_size))
                relayed = asyncio.run(_relay(service, server.url, events))
            finally:
                service.close()
        finally:
            server.kill()
    section = Section(
        "Relay: store → WL_EVENTS (issue 4)",
        f"relay throughput ≥ {TARGET_RATIO:.0%} of raw publish_async on the same server.",
        _NOTES,
        [
            Result("SQLite → NATS", RAW, events, raw, RAW, raw),
            Result(
                "SQLite → NATS",
                "relay (read, encode, publish, ack)",
                events,
                relayed,
                RAW,
                raw,
                TARGET_RATIO,
            ),
        ],
    )
    print_section(section)
    return section


def fill_stream(workdir: Path, url: str, events: int) -> int:
    """A stream of `events` real events for the read side's benchmarks: stored, then relayed."""
    service = open_service(Settings(var_dir=workdir / "store"), _clock())
    try:
        _fill_store(service, events)
        asyncio.run(_relay(service, url, events))
        return service.recorder.max_notification_id() or 0
    finally:
        service.close()


def _clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 2, 1, tzinfo=UTC))


def _fill_store(service: CaseService, events: int) -> int:
    """Copies one demo case's stored rows under new ids until `events` rows exist; returns their
    mean body size on the wire, so the raw publish sends messages of the same size."""
    service.publish_duty_list()
    template_id = run_demo_case(service, service.clock)  # type: ignore[arg-type]
    template = [
        n
        for n in service.recorder.select_notifications(start=0, limit=100)
        if n.originator_id == template_id
    ]
    written = service.recorder.max_notification_id() or 0
    while written < events:
        case_id = uuid.uuid4()
        service.recorder.insert_events(
            [StoredEvent(case_id, n.originator_version, n.topic, n.state) for n in template]
        )
        written += len(template)
    return sum(len(n.state) for n in template) // len(template)


async def _raw_publish(url: str, events: int, body_size: int) -> float:
    nc = await connect(url, name="bench-raw")
    try:
        js = nc.jetstream(publish_async_max_pending=4000)
        await js.add_stream(StreamConfig(name="BENCH_RAW", subjects=["bench.raw.>"]))
        body = b"x" * body_size
        started = time.perf_counter()
        pending = []
        for i in range(events):
            headers = {"Nats-Msg-Id": f"raw:{i}"}
            pending.append(
                await js.publish_async(f"bench.raw.s.{i % 100}.E", body, headers=headers)
            )
        await asyncio.gather(*pending)
        return events / (time.perf_counter() - started)
    finally:
        await nc.close()


async def _relay(service: CaseService, url: str, events: int) -> float:
    total = service.recorder.max_notification_id() or 0
    relay = Relay(service, Settings(nats_url=url, relay_poll_interval=0.05), lock=NoLeaderLock())
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(relay.run(stop))
    while relay.stats.last_notification_id < total:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    return total / elapsed


_NOTES = """- *raw publish_async*: messages of the relay's mean body size with a Nats-Msg-Id header,
  all acks awaited: the fastest this client and server store messages.
- *relay*: copies of the demo case (11 events each) in a SQLite store, relayed from an empty stream
  until the last notification is acked, connection and stream set-up included: reading the log,
  decoding each event, encoding its canonical JSON, publishing with the predecessor chain."""
