"""The relay's throughput (store → WL_EVENTS, acked) against raw `publish_async`, same server, same run."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from eventsourcing.persistence import StoredEvent
from nats.js.api import Header, StreamConfig

from domain.clock import ManualClock
from domain.service import CaseService
from infra.benchmarks.report import Result, Section, against_raw
from infra.benchmarks.store import section_on_backends
from infra.demo import run_demo_case
from infra.leader import NoLeaderLock
from infra.nats.connection import connect
from infra.nats.server import NatsServer
from infra.nats.streams import EVENTS_STREAM, ensure_streams
from infra.relay import Relay, Resume
from infra.settings import Settings
from infra.store import open_service

TARGET_RATIO = 0.50
EXPECTED_STREAM = Header.EXPECTED_STREAM.value
RAW = "raw publish_async of the same messages (acked)"


def relay_section(events: int, postgres_url: str = "") -> Section:
    """The relay on a SQLite store, then on PostgreSQL if a URL is given; each against the raw
    publish of its own messages, on servers of their own."""
    return section_on_backends(
        Section(
            "Relay: store → WL_EVENTS (issue 4)",
            f"relay throughput ≥ {TARGET_RATIO:.0%} of raw publish_async of the same messages.",
            _NOTES,
        ),
        postgres_url,
        lambda backend, settings: _measure(f"{backend} → NATS", settings, events),
    )


def _measure(backend: str, settings: Settings, events: int) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="wl-bench-relay-") as tmp:
        raw_server = NatsServer(Path(tmp) / "nats-raw").start()
        relay_server = NatsServer(Path(tmp) / "nats-relay").start()
        try:
            service = open_service(settings, _clock())
            try:
                body_size = _fill_store(service, events)
                messages = _encoded(service)
                bare = asyncio.run(_bare_publish(raw_server.url, len(messages), body_size))
                raw = asyncio.run(_raw_publish(raw_server.url, messages))
                relayed = asyncio.run(_relay(service, relay_server.url, events))
            finally:
                service.close()
        finally:
            raw_server.kill()
            relay_server.kill()
    total = len(messages)
    measured = {"relay (read, decode, encode, publish, ack)": relayed}
    return [
        *against_raw(backend, RAW, total, raw, measured, TARGET_RATIO),
        Result(backend, "bare publish_async (1 header)", total, bare, RAW, raw),
    ]


def _encoded(service: CaseService) -> list[tuple[str, bytes, dict[str, str]]]:
    """Every stored event exactly as the relay will send it: subject, body, headers, chain."""
    relay = Relay(service, Settings(), lock=NoLeaderLock())
    messages: list[tuple[str, bytes, dict[str, str]]] = []
    previous = Resume(0, 0)
    while envelopes := relay._next_envelopes(previous.notification_id):
        for envelope in envelopes:
            headers = envelope.headers() | previous.expectation() | {EXPECTED_STREAM: EVENTS_STREAM}
            messages.append((envelope.subject, envelope.body(), headers))
            previous = Resume(envelope.notification_id, 0)
    return messages


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


async def _raw_publish(url: str, messages: list[tuple[str, bytes, dict[str, str]]]) -> float:
    """The relay's own messages from memory, into a WL_EVENTS of their own: the raw limit."""
    nc = await connect(url, name="bench-raw")
    try:
        js = nc.jetstream(publish_async_max_pending=4000)
        await ensure_streams(js)
        started = time.perf_counter()
        pending = [
            await js.publish_async(subject, body, headers=headers)
            for subject, body, headers in messages
        ]
        await asyncio.gather(*pending)
        return len(messages) / (time.perf_counter() - started)
    finally:
        await nc.close()


async def _bare_publish(url: str, events: int, body_size: int) -> float:
    """Bodies of the same size with only a Nats-Msg-Id: what header-free traffic would cost."""
    nc = await connect(url, name="bench-bare")
    try:
        js = nc.jetstream(publish_async_max_pending=4000)
        await js.add_stream(StreamConfig(name="BENCH_BARE", subjects=["bench.bare.>"]))
        body = b"x" * body_size
        started = time.perf_counter()
        pending = []
        for i in range(events):
            headers = {"Nats-Msg-Id": f"bare:{i}"}
            pending.append(
                await js.publish_async(f"bench.bare.s.{i % 100}.E", body, headers=headers)
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


_NOTES = """- *raw publish_async of the same messages*: every event exactly as the relay sends it (subject,
  canonical body, its six headers including the predecessor chain), prepared in memory beforehand,
  published into an empty WL_EVENTS on a server of its own, all acks awaited: the fastest this
  client and server can store these messages. The relay must send the same bytes, so this is its
  raw limit.
- *bare publish_async*: bodies of the same size with a single Nats-Msg-Id header, for comparison:
  nats-py spends much of its per-message time encoding headers.
- *relay*: copies of the demo case (11 events each) in a SQLite store or a PostgreSQL schema, relayed from an empty stream
  until the last notification is acked, connection and stream set-up included: reading the log,
  decoding each event, encoding its canonical JSON, publishing with the predecessor chain."""
