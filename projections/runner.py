"""The projector runner: one durable pull consumer per projection on WL_EVENTS, exactly-once in effect.

Each fetched batch is applied to the read model and the projection's tracking row in ONE SQL
transaction (in a worker thread), then acknowledged by acking its last message (AckPolicy.ALL). The
tracking row, not the consumer, is the truth about progress: messages at or below it are skipped, and on
every (re)start the consumer is moved to just after it when it holds unacked messages (a crash or a halt)
or is ahead of it (a reset read model).

Bad input halts only the projection that met it, at that stream sequence: a message that does not
decode, or whose `apply` raises, is neither skipped silently (the read model would diverge) nor retried
in a hot loop. The status row says where and why; an operator resumes after a fix or skips that one
sequence (`projections.control`). NATS or database outages are different: the batch is retried with a
back-off, and nothing halts.

A projection may buffer its writes per batch (`base.BatchHooks`): `begin_batch` opens each batch
transaction (every retry too, so nothing buffered survives a rollback) and `end_batch` writes the buffer
before the tracking row is saved. When that bulk write fails on bad input, the batch is redone writing
after every event, so the halt names the event that caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from infra.event_codec import HEADER_CASE, HEADER_NOTIFICATION, BadMessage, EventEnvelope
from infra.leader import LeaderLock, NoLeaderLock
from infra.nats.streams import EVENTS_STREAM
from projections import tracking
from projections.base import ApplyContext, Projection, TransientError
from projections.tracking import Failure, Position
from projections.views_db import create_views_tables, writing

log = logging.getLogger(__name__)


def consumer_name(projection_name: str) -> str:
    return f"proj_{projection_name}"


@dataclass(frozen=True)
class RunnerOptions:
    batch: int = 500
    #: Seconds a fetch may take (also how quickly a stop is noticed). Short on purpose: once a fetch
    #: has found the stream drained, nats-py holds the messages that then trickle in until the
    #: batch is full or this runs out, so each live event could wait up to this long. Catch-up is
    #: unaffected (available messages come back at once); idle, it costs a pull request per tenth
    #: of a second per projection.
    fetch_timeout: float = 0.1
    #: Seconds before the server redelivers an unacked message (a slow batch is merely skipped later).
    ack_wait: float = 60.0
    #: Seconds to wait for NATS replies and publish acks inside a batch.
    nats_timeout: float = 10.0
    #: Seconds between looks at a halted projection's status row (resumed or skipped by an operator?).
    halt_poll: float = 2.0
    #: Longest pause between retries of a batch that met an outage.
    max_backoff: float = 30.0


@dataclass
class BatchOutcome:
    """`done`: index of the last message applied or skipped (ack it); `failure`: where it halted."""

    done: int = -1
    failure: Failure | None = None
    applied: int = 0
    ignored: int = 0
    skipped: int = 0
    published: int = 0
    position: Position = field(default_factory=Position)


class _FlushFailed(Exception):
    """`end_batch` failed on something other than an outage; the cause is `__cause__`."""


class _Halt(Exception):
    def __init__(self, index: int, failure: Failure) -> None:
        super().__init__(failure.error)
        self.index = index
        self.failure = failure


class ProjectorRunner:
    """Runs projections side by side until `stop` is set; one halting never stops the others."""

    def __init__(
        self,
        nc: Client,
        engine: Engine,
        projections: Sequence[Projection],
        options: RunnerOptions | None = None,
        locks: Callable[[str], LeaderLock] | None = None,
    ) -> None:
        """`locks`: each projection's lock (`infra.leader.projection_lock`), so that a second
        runner of it stands by; none, for a runner alone on its views database (tests, benches)."""
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=(options or RunnerOptions()).nats_timeout)
        self.engine = engine
        self.projections = list(projections)
        self.options = options or RunnerOptions()
        self.locks = locks or (lambda _name: NoLeaderLock())

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.to_thread(self._create_tables)
        await asyncio.gather(*(self._supervise(p, stop) for p in self.projections))

    def _create_tables(self) -> None:
        """The runner's own tables and every projection's (each may keep its own MetaData)."""
        create_views_tables(self.engine)
        for projection in self.projections:
            for table in projection.tables:
                table.create(self.engine, checkfirst=True)

    async def _supervise(self, projection: Projection, stop: asyncio.Event) -> None:
        """Leads the projection while its lock is held, standing by for it otherwise."""
        lock = await asyncio.to_thread(self.locks, projection.name)
        with lock:
            while not stop.is_set() and await lock.acquire(stop):
                log.info("leading: this runner applies", extra={"projection": projection.name})
                leading = asyncio.Event()
                watch = asyncio.create_task(_while_held(lock, stop, leading))
                try:
                    await self._restarting(projection, leading)
                finally:
                    watch.cancel()
                    await asyncio.to_thread(lock.release)

    async def _restarting(self, projection: Projection, stop: asyncio.Event) -> None:
        """A bug in the runner itself (not bad input) restarts this projection after a pause."""
        backoff = 1.0
        while not stop.is_set():
            try:
                await self._run_projection(projection, stop)
                return
            except Exception:
                log.exception("projector failed; restarting", extra={"projection": projection.name})
                await _sleep(stop, backoff)
                backoff = min(backoff * 2, self.options.max_backoff)

    async def _run_projection(self, projection: Projection, stop: asyncio.Event) -> None:
        name = projection.name
        await asyncio.to_thread(tracking.ensure_rows, self.engine, name)
        reported: int | None = None
        while not stop.is_set():
            status = await asyncio.to_thread(self._status, name)
            if status is not None and status.state == tracking.HALTED:
                if reported != status.halted_at_seq:
                    reported = status.halted_at_seq
                    log.error(
                        "projection is halted: resume it after a fix or skip the sequence",
                        extra={
                            "projection": name,
                            "stream_seq": status.halted_at_seq,
                            "error": status.error,
                        },
                    )
                await _sleep(stop, self.options.halt_poll)
                continue
            if reported is not None:
                log.warning("projection resumed", extra={"projection": name})
            failure = await self._consume(projection, stop)
            reported = failure.stream_seq if failure else None

    def _status(self, name: str) -> tracking.Status | None:
        with self.engine.connect() as conn:
            return tracking.read_status(conn, name)

    async def _consume(self, projection: Projection, stop: asyncio.Event) -> Failure | None:
        """Fetches and applies batches until stopped or halted (then returns where)."""
        sub = await self._bind(projection)
        try:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(self.options.batch, timeout=self.options.fetch_timeout)
                except TimeoutError:  # nothing new (nats-py raises either TimeoutError kind)
                    continue
                except nats.errors.Error as error:  # reconnecting, consumer gone, …: bind afresh
                    log.warning(
                        "fetch failed; binding again",
                        extra={
                            "projection": projection.name,
                            "error": f"{type(error).__name__}: {error}",
                        },
                    )
                    await _sleep(stop, 1.0)
                    return None
                started = time.monotonic()
                outcome = await self._apply_with_retry(projection, msgs, stop)
                if outcome is None:
                    return None  # stopped while retrying: the unacked batch comes again
                if outcome.done >= 0:
                    await msgs[outcome.done].ack()
                log.debug(
                    "batch committed",
                    extra={
                        "projection": projection.name,
                        "fetched": len(msgs),
                        "applied": outcome.applied,
                        "ignored": outcome.ignored,
                        "skipped": outcome.skipped,
                        "published": outcome.published,
                        "stream_seq": outcome.position.last_stream_seq,
                        "ms": round((time.monotonic() - started) * 1000, 1),
                    },
                )
                if outcome.failure is not None:
                    self._log_halt(projection.name, outcome.failure)
                    return outcome.failure
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        return None

    async def _bind(self, projection: Projection) -> JetStreamContext.PullSubscription:
        """Ensures the durable consumer and puts it just after the tracked position if needed."""
        durable = consumer_name(projection.name)
        position = await asyncio.to_thread(self._position, projection.name)
        info = await self._ensure_consumer(projection, durable)
        ack_floor = info.ack_floor.stream_seq if info.ack_floor else 0
        if info.num_ack_pending or ack_floor > position.last_stream_seq:
            start = position.last_stream_seq + 1
            await self.js.reset_consumer(EVENTS_STREAM, durable, seq=start)
            log.info(
                "consumer repositioned after the tracked sequence",
                extra={
                    "projection": projection.name,
                    "stream_seq": start,
                    "ack_floor": ack_floor,
                    "ack_pending": info.num_ack_pending,
                },
            )
        return await self.js.pull_subscribe_bind(durable, stream=EVENTS_STREAM)

    async def _ensure_consumer(self, projection: Projection, durable: str) -> ConsumerInfo:
        config = self._consumer_config(projection, durable)
        try:
            info: ConsumerInfo = await self.js.consumer_info(EVENTS_STREAM, durable)
        except NotFoundError:
            return await self.js.add_consumer(EVENTS_STREAM, config)
        if _filters(info.config) != _filters(config):
            log.warning("consumer filter changed; recreating it", extra={"consumer": durable})
            await self.js.delete_consumer(EVENTS_STREAM, durable)
            return await self.js.add_consumer(EVENTS_STREAM, config)
        return info

    def _consumer_config(self, projection: Projection, durable: str) -> ConsumerConfig:
        subjects = list(projection.subjects)
        return ConsumerConfig(
            name=durable,
            durable_name=durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.ALL,
            ack_wait=self.options.ack_wait,
            max_deliver=-1,
            max_ack_pending=max(2 * self.options.batch, 1000),
            filter_subject=subjects[0] if len(subjects) == 1 else None,
            filter_subjects=subjects if len(subjects) > 1 else None,
        )

    def _position(self, name: str) -> Position:
        with self.engine.connect() as conn:
            return tracking.read_position(conn, name)

    async def _apply_with_retry(
        self, projection: Projection, msgs: list[Msg], stop: asyncio.Event
    ) -> BatchOutcome | None:
        """Applies the batch; an outage (NATS, database) is retried with back-off, not halted on."""
        seqs = [msg.metadata.sequence.stream for msg in msgs]
        backoff = 0.5
        while not stop.is_set():
            context = ApplyContext(asyncio.get_running_loop(), self.js, self.options.nats_timeout)
            try:
                return await asyncio.to_thread(self._apply_batch, projection, msgs, seqs, context)
            except (TransientError, DBAPIError) as error:
                log.warning(
                    "batch failed on an outage; retrying",
                    extra={
                        "projection": projection.name,
                        "stream_seq": seqs[0],
                        "error": f"{type(error).__name__}: {error}",
                        "retry_in": backoff,
                    },
                )
                await _sleep(stop, backoff)
                backoff = min(backoff * 2, self.options.max_backoff)
        return None

    def _apply_batch(
        self, projection: Projection, msgs: list[Msg], seqs: list[int], context: ApplyContext
    ) -> BatchOutcome:
        """Commits the batch, or the part before a bad message plus the halt, in one transaction."""
        end, failure, flush_each = len(msgs), None, False
        while True:
            try:
                return self._try_batch(projection, msgs[:end], seqs, context, failure, flush_each)
            except _Halt as halt:  # rolled back: commit what came before it, and the halt
                end, failure = halt.index, halt.failure
            except _FlushFailed as error:  # rolled back: find the event by writing after each
                log.warning(
                    "end_batch failed; redoing the batch event by event",
                    extra={"projection": projection.name, "error": repr(error.__cause__)},
                )
                flush_each = True
            context = ApplyContext(context.loop, context.js, context.timeout)

    def _try_batch(
        self,
        projection: Projection,
        msgs: list[Msg],
        seqs: list[int],
        context: ApplyContext,
        failure: Failure | None,
        flush_each: bool = False,
    ) -> BatchOutcome:
        with writing(self.engine), self.engine.begin() as conn:
            position = tracking.lock_position(conn, projection.name)
            skips = tracking.skipped_seqs(conn, projection.name)
            outcome = BatchOutcome(position=position)
            _begin_batch(projection, conn)
            for index, msg in enumerate(msgs):
                seq = seqs[index]
                if seq in skips and seq > position.last_stream_seq:  # an operator's earlier skip
                    position.last_stream_seq = seq
                if position.covers(seq):
                    outcome.skipped += 1
                    outcome.done = index
                    continue
                envelope = _decode(index, msg, seq)
                if position.covers(seq, envelope.notification_id):
                    position.last_stream_seq = seq
                    outcome.skipped += 1
                    outcome.done = index
                    continue
                context.begin_event(seq)
                handled = _apply(projection, conn, envelope, context, index, msg, seq)
                if flush_each:
                    _end_event_batch(projection, conn, index, msg, seq)
                context.end_event()
                position.last_notification_id = envelope.notification_id
                position.last_stream_seq = seq
                if handled:
                    position.applied += 1
                    outcome.applied += 1
                else:
                    position.ignored += 1
                    outcome.ignored += 1
                outcome.done = index
            if not flush_each:
                _end_batch(projection, conn)
            outcome.published = context.flush()  # acks awaited before the commit
            tracking.save_position(conn, projection.name, position)
            if failure is not None:
                tracking.mark_halted(conn, projection.name, failure)
                outcome.failure = failure
        return outcome

    def _log_halt(self, name: str, failure: Failure) -> None:
        log.error(
            "PROJECTION HALTED on bad input; later events are not applied until an operator "
            "resumes it or skips this sequence",
            extra={
                "projection": name,
                "stream_seq": failure.stream_seq,
                "subject": failure.subject,
                "notification_id": failure.notification_id,
                "case_id": failure.case_id,
                "error": failure.error,
            },
        )


def _decode(index: int, msg: Msg, seq: int) -> EventEnvelope:
    try:
        return EventEnvelope.from_message(msg.subject, msg.headers, msg.data)
    except BadMessage as error:
        raise _Halt(index, _failure(msg, seq, error)) from None


def _apply(
    projection: Projection,
    conn: Connection,
    envelope: EventEnvelope,
    context: ApplyContext,
    index: int,
    msg: Msg,
    seq: int,
) -> bool:
    try:
        return projection.apply(conn, envelope, context)
    except TransientError:
        raise
    except DBAPIError as error:
        if error.connection_invalidated:
            raise
        log.exception("apply failed", extra={"projection": projection.name, "stream_seq": seq})
        raise _Halt(index, _failure(msg, seq, error)) from None
    except Exception as error:
        log.exception("apply failed", extra={"projection": projection.name, "stream_seq": seq})
        raise _Halt(index, _failure(msg, seq, error)) from None


def _begin_batch(projection: Projection, conn: Connection) -> None:
    hook = getattr(projection, "begin_batch", None)
    if hook is not None:
        hook(conn)


def _end_batch(projection: Projection, conn: Connection) -> None:
    """Runs the projection's bulk write; bad input there raises _FlushFailed, an outage itself."""
    hook = getattr(projection, "end_batch", None)
    if hook is None:
        return
    try:
        hook(conn)
    except TransientError:
        raise
    except DBAPIError as error:
        if error.connection_invalidated:
            raise
        raise _FlushFailed() from error
    except Exception as error:
        raise _FlushFailed() from error


def _end_event_batch(
    projection: Projection, conn: Connection, index: int, msg: Msg, seq: int
) -> None:
    """Writes one event's buffer (a batch redone after _FlushFailed): a failure halts at it."""
    try:
        _end_batch(projection, conn)
    except _FlushFailed as flush:
        cause = flush.__cause__
        assert isinstance(cause, Exception)
        log.error(
            "end_batch failed",
            exc_info=cause,
            extra={"projection": projection.name, "stream_seq": seq},
        )
        raise _Halt(index, _failure(msg, seq, cause)) from None
    _begin_batch(projection, conn)


def _failure(msg: Msg, seq: int, error: Exception) -> Failure:
    headers = msg.headers or {}
    raw_id = headers.get(HEADER_NOTIFICATION, "")
    return Failure(
        stream_seq=seq,
        subject=msg.subject,
        notification_id=int(raw_id) if raw_id.isdigit() else None,
        case_id=headers.get(HEADER_CASE),
        error=f"{type(error).__name__}: {error}"[:2000],
    )


def _filters(config: ConsumerConfig) -> list[str]:
    if config.filter_subjects:
        return sorted(config.filter_subjects)
    return [config.filter_subject] if config.filter_subject else []


#: Seconds between two checks that a leading runner still holds its projection's lock.
LOCK_CHECK_SECONDS = 1.0


async def _while_held(lock: LeaderLock, stop: asyncio.Event, leading: asyncio.Event) -> None:
    """Sets `leading` (the runner's stop) on `stop` or once the lock is lost (its database session
    died): the batch in hand finishes, no further one starts, and the runner stands by again."""
    while not stop.is_set():
        if not await lock.check():
            log.error("projection lock lost: stopped applying", extra={"lock": lock.name})
            break
        await _sleep(stop, LOCK_CHECK_SECONDS)
    leading.set()


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    """Sleeps, waking early when `stop` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def apply_envelopes(
    conn: Connection,
    projection: Projection,
    envelopes: list[EventEnvelope],
    context: ApplyContext,
    position: Position,
) -> None:
    """Applies envelopes read from the event store (`rebuild --from-store`): no stream, no acks.

    The same hooks and counting as a fetched batch; events at or below the position are skipped.
    Any failure propagates: a rebuild stops at the event and says which (the caller rolls back).
    """
    _begin_batch(projection, conn)
    for envelope in envelopes:
        if envelope.notification_id <= position.last_notification_id:
            continue
        context.begin_event(0)
        handled = projection.apply(conn, envelope, context)
        context.end_event()
        position.last_notification_id = envelope.notification_id
        if handled:
            position.applied += 1
        else:
            position.ignored += 1
    hook = getattr(projection, "end_batch", None)
    if hook is not None:
        hook(conn)
    context.flush()
