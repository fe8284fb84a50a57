"""Live feeds for WebSocket clients: one JetStream ordered consumer per client, into a bounded queue.

Each client gets its own ephemeral ordered consumer, so a client's position is just a stream
sequence it can hand back (`?since=`) after a reconnect, and no client's pace touches another's. The
NATS callback only ever puts into the client's queue: it never waits on the socket. A client that
lets `queue_size` frames pile up is marked dropped (`dropped` is set) and gets nothing more; the
WebSocket router closes it with 4008 and `close()` gives the consumer back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from gateway.policy import without_contact
from infra.event_codec import HEADER_NOTIFICATION
from infra.nats.streams import DEPT_STREAM, EVENTS_STREAM

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedSource:
    """Where a feed reads from; `label` names the feed in metrics and logs (never a unit's code)."""

    label: str
    stream: str
    subject: str


def command_centre_source() -> FeedSource:
    return FeedSource("command-centre", EVENTS_STREAM, "wl.ev.>")


def department_source(dept: str) -> FeedSource:
    """`dept` must be a known department code (a valid subject token): the caller checks it."""
    return FeedSource("department", DEPT_STREAM, f"wl.dept.{dept}.>")


def case_source(case_id: UUID) -> FeedSource:
    return FeedSource("case", EVENTS_STREAM, f"wl.ev.*.{case_id}.>")


def event_frame(msg: Msg, redact_contact: bool = False) -> tuple[int, str] | None:
    """The frame of one stream message and its stream sequence; None for a body that is not JSON
    (garbage an operator skipped in the projections must not break every client's feed)."""
    seq = msg.metadata.sequence.stream
    try:
        event = json.loads(msg.data)
    except ValueError:
        log.warning("not forwarding an undecodable message", extra={"stream_seq": seq})
        return None
    if redact_contact:
        event = without_contact(event)
    notification = (msg.headers or {}).get(HEADER_NOTIFICATION)
    frame: dict[str, Any] = {
        "type": "event",
        "seq": seq,
        "subject": msg.subject,
        "event": event,
        "notification_id": int(notification) if notification and notification.isdigit() else None,
    }
    return seq, json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def heartbeat_frame(seq: int) -> str:
    return json.dumps({"type": "heartbeat", "seq": seq}, separators=(",", ":"))


class Feed:
    """One client's subscription. `seq` is the last sequence handed out (or the starting point): a
    heartbeat carries it, so even a client that saw no event holds a valid resume token."""

    def __init__(
        self,
        js: JetStreamContext,
        source: FeedSource,
        *,
        since: int | None,
        queue_size: int,
        redact_contact: bool = False,
    ) -> None:
        self.js = js
        self.source = source
        self.redact_contact = redact_contact
        self.since = since
        self.seq = since or 0
        self.dropped = asyncio.Event()
        self._queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue(maxsize=max(1, queue_size))
        self._queued_seq = self.seq
        self._subscription: JetStreamContext.PushSubscription | None = None

    async def open(self) -> None:
        """Starts after `since`, or after the stream's current end: unlike DeliverPolicy.NEW, the
        start is a known sequence, so the first heartbeat is already a lossless resume point."""
        if self.since is None:
            info = await self.js.stream_info(self.source.stream)
            self.seq = self._queued_seq = info.state.last_seq
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.seq + 1
        )
        self._subscription = await self.js.subscribe(
            self.source.subject,
            stream=self.source.stream,
            cb=self._on_message,
            ordered_consumer=True,
            config=config,
        )

    async def close(self) -> None:
        """Gives the consumer back; safe to call twice and while NATS is closing (the server then
        removes the ephemeral consumer itself once nobody listens)."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def next_frame(self, heartbeat: float) -> str:
        """The next event frame, or a heartbeat frame when none came for `heartbeat` seconds."""
        try:
            # Not `wait_for`: on 3.11 it swallows a cancellation that races a completed get, and
            # the router could then never stop this pump.
            async with asyncio.timeout(heartbeat):
                seq, text = await self._queue.get()
        except TimeoutError:
            return heartbeat_frame(self.seq)
        self.seq = seq
        return text

    async def _on_message(self, msg: Msg) -> None:
        if self.dropped.is_set():
            return
        frame = event_frame(msg, self.redact_contact)
        if frame is None or frame[0] <= self._queued_seq:
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped.set()
            return
        self._queued_seq = frame[0]
        # NATS hands a subscription its messages back to back without yielding: let the pump
        # take each one, so only a socket that stops draining fills the queue, not a burst.
        await asyncio.sleep(0)
