"""What the relay tests share: many real events fast, the stream read back, relays in and out of process.

The expected stream is computed here from the notification log alone (the street of a case is read from
its own CaseReported event), independently of the relay's street cache and store look-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventsourcing.persistence import Notification, StoredEvent
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from domain.actors import Actor
from domain.clock import ManualClock
from domain.service import CaseService
from infra.event_codec import DISTRICT_TOKEN, HEADER_NOTIFICATION, EventEnvelope
from infra.leader import NoLeaderLock
from infra.nats.connection import connect
from infra.nats.streams import EVENTS_STREAM, EVENTS_SUBJECTS
from infra.relay import Relay
from infra.settings import Settings
from tests.integration.builders import decode_state, encode_state, run_full_loop

#: The other street the bulk events are reported in (the template case is in 建外 `jianwai`).
OTHER_STREET = "chaowai"


# --- events ------------------------------------------------------------------------------------


def template_events(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> list[StoredEvent]:
    """One case through the whole loop (22 real events via CaseService), as stored rows."""
    case_id = run_full_loop(service, clock, actors).case_id
    return [
        StoredEvent(n.originator_id, n.originator_version, n.topic, n.state)
        for n in service.recorder.select_notifications(start=0, limit=1000)
        if n.originator_id == case_id
    ]


def insert_cases(service: CaseService, template: list[StoredEvent], events: int) -> int:
    """Stores copies of the template case under new ids until at least `events` more rows exist.

    Every other copy is reported in another street, so subjects vary. Rows go in with the recorder's
    own bulk insert, a case per transaction, which is what many concurrent commands look like.
    """
    other = _with_street(service, template[0], OTHER_STREET)
    written = 0
    copy = 0
    while written < events:
        case_id = uuid.uuid4()
        first = other if copy % 2 else template[0]
        rows = [StoredEvent(case_id, e.originator_version, e.topic, e.state) for e in template[1:]]
        service.recorder.insert_events([StoredEvent(case_id, 1, first.topic, first.state), *rows])
        written += len(template)
        copy += 1
    return written


def _with_street(service: CaseService, reported: StoredEvent, street: str) -> StoredEvent:
    state = decode_state(service, reported)
    state["street"] = street
    return encode_state(service, reported, state)


def notifications(service: CaseService) -> list[Notification]:
    """The whole notification log, page by page."""
    found: list[Notification] = []
    while page := service.recorder.select_notifications(
        start=found[-1].id if found else 0, limit=5000, inclusive_of_start=not found
    ):
        found.extend(page)
    return found


def expected_envelopes(service: CaseService) -> list[EventEnvelope]:
    """What the stream must hold: every notification, in order, under its case's street."""
    streets: dict[Any, str] = {}
    expected = []
    for n in notifications(service):
        if not n.topic.startswith("whistleloop.case."):
            street = DISTRICT_TOKEN
        elif n.originator_version == 1:
            street = service.mapper.to_domain_event(n).street  # type: ignore[attr-defined]
            streets[n.originator_id] = street
        else:
            street = streets[n.originator_id]
        expected.append(EventEnvelope.from_notification(n, service.mapper, street))
    return expected


# --- the stream --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamMessage:
    seq: int
    subject: str
    headers: dict[str, str]
    data: bytes


async def read_stream(url: str, timeout: float = 30.0) -> list[StreamMessage]:
    """Every message of WL_EVENTS in stream order (an ordered consumer from sequence 1)."""
    nc = await connect(url, name="test-reader")
    try:
        js = nc.jetstream()
        last = (await js.stream_info(EVENTS_STREAM)).state.last_seq
        if last == 0:
            return []
        sub = await js.subscribe(
            EVENTS_SUBJECTS,
            stream=EVENTS_STREAM,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        found: list[StreamMessage] = []
        while not found or found[-1].seq < last:
            msg = await sub.next_msg(timeout=timeout)
            found.append(
                StreamMessage(
                    msg.metadata.sequence.stream, msg.subject, dict(msg.headers or {}), msg.data
                )
            )
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


async def last_relayed(url: str) -> int:
    """The notification id of the stream's last message (0: empty stream)."""
    nc = await connect(url, name="test-probe")
    try:
        js = nc.jetstream()
        try:
            last = await js.get_last_msg(EVENTS_STREAM, EVENTS_SUBJECTS)
        except NotFoundError:  # no stream yet, or an empty one
            return 0
        return int((last.headers or {})[HEADER_NOTIFICATION])
    finally:
        await nc.close()


async def wait_until_relayed(url: str, service: CaseService, timeout: float) -> None:
    """Waits until the stream's last message is the store's last notification."""
    target = service.recorder.max_notification_id() or 0
    await wait_for(lambda: _relayed_at_least(url, target), timeout, f"notification {target}")


async def _relayed_at_least(url: str, target: int) -> bool:
    with contextlib.suppress(Exception):  # the server may be restarting
        return await last_relayed(url) >= target
    return False


async def wait_for(
    check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
) -> None:
    """Polls `check` (sync or async) until it is true; fails saying what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


async def assert_stream_equals_log(url: str, service: CaseService) -> list[StreamMessage]:
    """The stream holds every notification once, in notification order, with the exact bytes."""
    stream = await read_stream(url)
    expected = expected_envelopes(service)
    ids = [int(m.headers[HEADER_NOTIFICATION]) for m in stream]
    assert len(ids) == len(set(ids)), "a notification is on the stream twice"
    assert ids == sorted(ids), "the stream is out of notification order"
    assert ids == [e.notification_id for e in expected], "the stream and the log differ"
    for message, envelope in zip(stream, expected, strict=True):
        assert message.subject == envelope.subject
        assert message.data == envelope.body()
        assert envelope.headers().items() <= message.headers.items()
    return stream


# --- relays ------------------------------------------------------------------------------------


NoLock = NoLeaderLock


@contextlib.asynccontextmanager
async def running_relay(
    service: CaseService, settings: Settings, **options: Any
) -> AsyncIterator[Relay]:
    """A Relay running in this event loop; stopped (and checked not to have crashed) on exit."""
    relay = Relay(service, settings, **options)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield relay
        assert not task.done() or task.exception() is None
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def nats_client(url: str) -> Client:
    return await connect(url, name="test-client")


WHISTLELOOP = Path(sys.executable).with_name("whistleloop")


def relay_env(settings: Settings) -> dict[str, str]:
    """The environment that points a `whistleloop relay` process at the test's store and server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WL_")}
    env.update(
        WL_VAR_DIR=str(settings.var_dir),
        WL_DATABASE_URL=settings.database_url,
        WL_DATABASE_SCHEMA=settings.database_schema,
        WL_NATS_URL=settings.nats_url,
        WL_RELAY_BATCH=str(settings.relay_batch),
        WL_RELAY_POLL_INTERVAL=str(settings.relay_poll_interval),
        WL_RELAY_ACK_TIMEOUT=str(settings.relay_ack_timeout),
    )
    return env


@dataclass
class RelayProcess:
    """`whistleloop relay` as a child process, its JSON log lines in a file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, settings: Settings, log_path: Path) -> RelayProcess:
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [str(WHISTLELOOP), "--log-level", "debug", "relay"],
                env=relay_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(process, log_path)

    def kill(self) -> None:
        """SIGKILL: no goodbye, no drain, no lock release but the kernel's."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM, as an operator would; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def log(self) -> list[dict[str, Any]]:
        """The structured lines so far (anything else it printed is kept as `raw`)."""
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"raw": line})
        return lines

    def said(self, message: str) -> bool:
        return any(line.get("msg") == message for line in self.log())

    def batches(self) -> list[dict[str, Any]]:
        return [line for line in self.log() if line.get("msg") == "relayed batch"]
