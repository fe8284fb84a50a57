"""The outbox relay: the event store's notification log onto JetStream (`WL_EVENTS`), in order, once.

Each pass reads the notifications after the last relayed id, publishes them with `publish_async` and
waits (bounded) for every ack. Three things keep the stream equal to the log whatever fails:

* Resume point: the `Wl-Notification-Id` of the stream's last message, read afresh after any error,
  so a crash or a lost batch never skips or repeats anything.
* Chain: every message carries `Nats-Expected-Last-Msg-Id` naming its predecessor (the first one into
  an empty stream `Nats-Expected-Last-Sequence: 0`), so the server stores a message only right after
  the one before it. A stale publish flushed after a reconnect, or a second relay, cannot reorder.
* De-duplication: `Nats-Msg-Id = whistleloop:<notification id>` turns a re-send into a no-op ack.

Any error, timeout or refusal drops the batch; the relay recomputes the resume point and tries again
with back-off. It wakes on a core-NATS nudge (`wl.relay.nudge`, sent after commits, see `Nudger`) and
polls as a fallback. Only the holder of the leader lock (infra.leader) publishes.

A foreign message at the end of the stream (no valid `Wl-Notification-Id`/`Nats-Msg-Id` pair: not
something this relay published) breaks the chain. The relay will not guess where it stands: it logs an
error naming the message's stream sequence on every retry, reports it in `stats.blocked`, and
publishes nothing until an operator has dealt with that message (found out how it got there — the
generated NATS config lets only the relay publish on `wl.ev.>` — and rebuilt the stream from the
store, which stays the source of truth). Refusals surface at once thanks to `RefusalAwareJetStream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import APIError, NotFoundError
from sqlalchemy.exc import SQLAlchemyError

from domain.service import CaseService
from infra.envelopes import STREET_CACHE_SIZE, StoreEnvelopes
from infra.event_codec import (
    HEADER_EXPECTED_LAST_MSG_ID,
    HEADER_MSG_ID,
    HEADER_NOTIFICATION,
    EventEnvelope,
    msg_id,
)
from infra.leader import LeaderLock, leader_lock
from infra.logs import configure_logging
from infra.nats.connection import connect_service
from infra.nats.streams import EVENTS_STREAM, EVENTS_SUBJECTS, NUDGE_SUBJECT, ensure_streams
from infra.settings import Settings
from infra.signals import until_stopped
from infra.store import open_service

log = logging.getLogger(__name__)

#: Core-NATS subject anyone may publish an empty message to after committing events.
HEADER_EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0


class RelayError(Exception):
    """A batch that did not make it; the relay retries from a fresh resume point."""

    def __init__(self, message: str, notification_id: int | None = None) -> None:
        super().__init__(message)
        self.notification_id = notification_id


class ForeignTail(RelayError):
    """The stream's last message is not one this relay published: the chain cannot go on."""

    def __init__(self, stream_seq: int, subject: str, headers: dict[str, str]) -> None:
        super().__init__(
            f"the last message of {EVENTS_STREAM} (stream seq {stream_seq}, subject {subject}) "
            f"was not published by the relay (headers {headers}); refusing to guess the resume "
            "point — nothing is relayed until an operator deals with that message"
        )
        self.stream_seq = stream_seq


@dataclass(frozen=True)
class Resume:
    """Where the stream stands: the last relayed notification id and its stream sequence."""

    notification_id: int
    stream_seq: int

    def expectation(self) -> dict[str, str]:
        """The header that makes the server store the next message only right after this one."""
        if self.notification_id == 0:
            return {HEADER_EXPECTED_LAST_SEQUENCE: "0"}  # into an empty stream
        return {HEADER_EXPECTED_LAST_MSG_ID: msg_id(self.notification_id)}


@dataclass
class RelayStats:
    relayed: int = 0  # messages stored by this relay (duplicates not counted)
    duplicates: int = 0  # re-sends the server recognised and dropped
    retries: int = 0  # batches dropped and tried again
    batches: int = 0
    last_notification_id: int = 0  # the last id known to be on the stream
    leading: bool = False
    leadership_lost: int = 0
    blocked: str | None = None  # why the relay publishes nothing (a foreign tail)


class RefusalAwareJetStream(JetStreamContext):
    """A JetStream context whose `publish_async` futures fail when the server refuses a message.

    nats-py 2.16 raises inside its ack callback instead of failing the future (nats-io/nats.py#985):
    the refusal reaches only the connection's error callback and the future stays pending until our
    ack timeout. A refusal (a broken chain) then costs a whole timeout. Drop this once fixed upstream.
    """

    async def _handle_async_reply(self, msg: Msg) -> None:
        try:
            await super()._handle_async_reply(msg)
        except APIError as error:
            prefix = self._async_reply_prefix or b""
            future = self._publish_async_futures.get(msg.subject[len(prefix) :])
            if future is not None and not future.done():
                future.set_exception(error)


class Relay:
    """Relays one event store onto WL_EVENTS while it holds the leader lock; see the module doc."""

    def __init__(
        self,
        service: CaseService,
        settings: Settings,
        *,
        street_cache_size: int = STREET_CACHE_SIZE,
        lock: LeaderLock | None = None,
    ) -> None:
        """`lock` replaces the store's own leader lock (`leader_lock`)."""
        self.service = service
        self._lock = lock
        self.settings = settings
        self.reader = StoreEnvelopes(service, street_cache_size)
        self.streets = self.reader.streets
        self.stats = RelayStats()
        self._wake = asyncio.Event()
        self._prefetched: tuple[int, asyncio.Future[list[EventEnvelope]]] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Connects, makes sure the streams exist, waits for leadership, relays until `stop`."""
        nc = await connect_service(self.settings, "whistleloop-relay")
        try:
            # Room for a whole batch: a publish that never has to wait for a slot never yields,
            # so the client writes the batch in few large socket writes.
            js = RefusalAwareJetStream(
                nc, publish_async_max_pending=max(4000, 2 * self.settings.relay_batch)
            )
            await ensure_streams(js, self.settings.nats_replicas)
            await nc.subscribe(NUDGE_SUBJECT, cb=self._on_nudge)
            with self._lock or leader_lock(self.settings, self.service) as lock:
                while not stop.is_set() and await lock.acquire(stop):
                    log.info("leading: this relay publishes", extra=self.log_fields(lock=lock.name))
                    self.stats.leading = True
                    try:
                        await self._lead(js, lock, stop)
                    finally:
                        self.stats.leading = False
                        await asyncio.to_thread(lock.release)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.drain(), 10)

    async def _on_nudge(self, _msg: Msg) -> None:
        self._wake.set()

    async def _lead(self, js: JetStreamContext, lock: LeaderLock, stop: asyncio.Event) -> None:
        """Relays while the lock holds; returns on `stop` or when leadership is lost."""
        resume: Resume | None = None
        backoff = BACKOFF_FIRST
        while not stop.is_set():
            if not await lock.check():
                self.stats.leadership_lost += 1
                log.error(
                    "leadership lost: stopped publishing", extra=self.log_fields(lock=lock.name)
                )
                return
            self._wake.clear()  # a nudge from now on means another pass
            try:
                if resume is None:
                    resume = await self._resume_point(js)
                resume, count = await self._relay_batch(js, resume)
            except ForeignTail as error:
                self.stats.blocked = str(error)
                log.error("%s", error, extra=self.log_fields(stream_seq=error.stream_seq))
            except (RelayError, nats.errors.Error, TimeoutError, SQLAlchemyError, OSError) as error:
                self.stats.retries += 1
                log.warning(
                    "batch dropped, retrying from the stream's last message: %r",
                    error,
                    extra=self.log_fields(
                        backoff=backoff, notification_id=getattr(error, "notification_id", None)
                    ),
                )
            else:
                self.stats.blocked = None
                backoff = BACKOFF_FIRST
                if count < self.settings.relay_batch:
                    await self._idle(stop)
                continue
            resume = None
            await _wait(stop, backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _idle(self, stop: asyncio.Event) -> None:
        """Sleeps until a nudge, `stop`, or the poll interval, whichever comes first."""
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(
                waiters, timeout=self.settings.relay_poll_interval, return_when="FIRST_COMPLETED"
            )
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _resume_point(self, js: JetStreamContext) -> Resume:
        """The stream's last message says how far the relay got (an empty stream: nowhere)."""
        try:
            last = await js.get_last_msg(EVENTS_STREAM, EVENTS_SUBJECTS, direct=True)
        except NotFoundError:
            return Resume(0, 0)
        headers = dict(last.headers or {})
        notification = headers.get(HEADER_NOTIFICATION, "")
        if not notification.isdigit() or headers.get(HEADER_MSG_ID) != msg_id(int(notification)):
            raise ForeignTail(last.seq or 0, last.subject or "", headers)
        return Resume(int(notification), last.seq or 0)

    async def _relay_batch(self, js: JetStreamContext, resume: Resume) -> tuple[Resume, int]:
        """Publishes the notifications after `resume`; returns the new resume point and how many."""
        envelopes = await self._read_after(resume.notification_id)
        if not envelopes:
            return resume, 0
        acks, failure = await self._publish_all(js, envelopes, resume)
        duplicates = self._count(acks)
        if acks:
            self.stats.last_notification_id = envelopes[len(acks) - 1].notification_id
        if failure is not None:
            raise failure
        last = Resume(envelopes[-1].notification_id, acks[-1].seq)
        self.stats.batches += 1
        log.debug(
            "relayed batch",
            extra=self.log_fields(
                first_notification_id=envelopes[0].notification_id,
                notification_id=last.notification_id,
                stream_seq=last.stream_seq,
                count=len(envelopes),
                batch_duplicates=duplicates,
            ),
        )
        return last, len(envelopes)

    async def _publish_all(
        self, js: JetStreamContext, envelopes: list[EventEnvelope], resume: Resume
    ) -> tuple[list[PubAck], RelayError | None]:
        """Publishes the batch as a chain and waits (bounded) for the acks.

        Returns the acks of the leading run of messages that were stored (or recognised as
        duplicates), and the error that ended it, if any.
        """
        timeout = self.settings.relay_ack_timeout
        futures: list[asyncio.Future[PubAck]] = []
        try:
            previous = resume
            for envelope in envelopes:
                headers = envelope.headers() | previous.expectation()
                futures.append(
                    await js.publish_async(
                        envelope.subject,
                        envelope.body(),
                        headers=headers,
                        stream=EVENTS_STREAM,
                    )
                )
                previous = Resume(envelope.notification_id, 0)
            self._prefetch(previous.notification_id)  # read the next batch while acks come back
            await asyncio.wait(futures, timeout=timeout)
            acks: list[PubAck] = []
            for index, (envelope, future) in enumerate(zip(envelopes, futures, strict=True)):
                if not future.done():
                    self._count(_stored(futures[index + 1 :]))
                    return acks, RelayError(
                        f"no ack within {timeout:g} s", envelope.notification_id
                    )
                error = future.exception()
                if error is not None:
                    self._count(_stored(futures[index + 1 :]))
                    return acks, RelayError(f"refused: {error}", envelope.notification_id)
                acks.append(future.result())
            return acks, None
        finally:
            for future in futures:
                future.cancel()  # frees the client's pending-ack slot of anything left hanging

    def _count(self, acks: list[PubAck]) -> int:
        """Adds acks to the stats; returns how many were duplicates."""
        duplicates = sum(1 for ack in acks if ack.duplicate)
        self.stats.duplicates += duplicates
        self.stats.relayed += len(acks) - duplicates
        return duplicates

    def _prefetch(self, after: int) -> None:
        if self._prefetched is None or self._prefetched[0] != after:
            self._prefetched = (
                after,
                asyncio.ensure_future(asyncio.to_thread(self._next_envelopes, after)),
            )

    async def _read_after(self, after: int) -> list[EventEnvelope]:
        """The batch after `after`: the one read ahead while the last acks came in, if it is full.

        A read-ahead is a list of stored notifications after an id; the log only grows, so it is
        never wrong, but it may be shorter than what the store holds by now (events committed since,
        perhaps the very ones a nudge announced): only a full batch is taken as it is.
        """
        if self._prefetched is not None:
            key, task = self._prefetched
            self._prefetched = None
            envelopes = await task
            if key == after and len(envelopes) >= self.settings.relay_batch:
                return envelopes
        return await asyncio.to_thread(self._next_envelopes, after)

    def _next_envelopes(self, after: int) -> list[EventEnvelope]:
        """Reads and encodes the next batch (in a worker thread: it queries the store)."""
        return self.reader.after(after, self.settings.relay_batch)

    def log_fields(self, **fields: object) -> dict[str, object]:
        """Log fields: the counters plus whatever the line is about."""
        return {
            "pid": os.getpid(),
            "relayed": self.stats.relayed,
            "last_notification_id": self.stats.last_notification_id,
            "duplicates": self.stats.duplicates,
            "retries": self.stats.retries,
            **fields,
        }


def _stored(futures: list[asyncio.Future[PubAck]]) -> list[PubAck]:
    """Acks that came back after the batch's chain broke: with two relays racing, a message whose
    expected predecessor the other relay stored is stored too, and counts as relayed here."""
    return [f.result() for f in futures if f.done() and not f.cancelled() and not f.exception()]


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Nudger:
    """An `after_save` listener that wakes the relay: an empty core-NATS message on the nudge subject.

    Safe to call from any thread (commands run in worker threads); calls made while a nudge is still
    queued share it, and it never raises (a lost nudge only costs one poll interval).
    """

    def __init__(self, nc: Client, loop: asyncio.AbstractEventLoop) -> None:
        self.nc = nc
        self.loop = loop
        self._queued = False
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self) -> None:
        if self._queued:
            return
        self._queued = True
        try:
            self.loop.call_soon_threadsafe(self._send)
        except RuntimeError:  # the loop has closed: nobody to nudge
            self._queued = False

    def _send(self) -> None:
        self._queued = False  # commits from now on need a nudge of their own
        task = self.loop.create_task(self._publish())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self.nc.publish(NUDGE_SUBJECT, b"")


def main(settings: Settings) -> None:
    """`whistleloop relay`: relay until SIGINT/SIGTERM, then drain NATS and close the store."""
    if not logging.getLogger().handlers:  # the CLI configures logging with its --log-level
        configure_logging("INFO")
    service = open_service(settings)
    try:
        asyncio.run(_serve(Relay(service, settings)))
    finally:
        service.close()


async def _serve(relay: Relay) -> None:
    await until_stopped(relay.run)
    log.info("relay stopped", extra=relay.log_fields())
