"""`whistleloop projections rebuild [NAME] [--from-store]`: empty a read model and replay it.

From the stream (the default) the projection is reset and its ordinary runner replays WL_EVENTS from
the first sequence: the same code path as live projection, so a rebuild proves nothing new can go
wrong. `--from-store` reads the event store instead (when the stream was lost or is being rebuilt
itself) and applies the same envelopes the relay would publish, batch by batch, each batch in one
transaction with the tracking row; afterwards the tracking row points at the stream sequence of the
last event applied, so the live runner continues from there without re-reading the stream.

Stop the live projector for that projection first: a rebuild refuses to run while the projection's
durable consumer has a waiting pull request (someone is consuming it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import Engine

from domain.service import CaseService
from infra.envelopes import StoreEnvelopes
from infra.event_codec import HEADER_NOTIFICATION, EventEnvelope
from infra.nats.streams import EVENTS_STREAM
from projections import tracking
from projections.base import ApplyContext, Projection
from projections.control import reset_projection
from projections.runner import ProjectorRunner, RunnerOptions, apply_envelopes, consumer_name

#: Called with (events done, events in all) as the rebuild goes.
Progress = Callable[[int, int], None]

#: Projections whose output is not a table: replaying them would publish everything again.
NOT_REBUILDABLE = {
    "dept_feeds": (
        "dept_feeds re-publishes events to WL_DEPT; rebuilding it would send every department its "
        "whole feed again. Its output is the stream itself: nothing to rebuild."
    ),
}


class RebuildError(RuntimeError):
    """A rebuild that cannot run (live consumer, not a table) or stopped (a halt, a failed batch)."""


@dataclass(frozen=True)
class RebuildSummary:
    name: str
    source: str  # "stream" | "store"
    events: int
    applied: int
    ignored: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


async def rebuild_from_stream(
    nc: Client, engine: Engine, projection: Projection, progress: Progress, batch: int = 500
) -> RebuildSummary:
    """Resets the projection and runs its runner until it has applied the stream as it was."""
    js = nc.jetstream()
    await refuse_if_live(js, projection.name)
    info = await js.stream_info(EVENTS_STREAM)
    target = info.state.last_seq
    await asyncio.to_thread(reset_projection, engine, projection)
    started = time.monotonic()
    stop = asyncio.Event()
    runner = ProjectorRunner(
        nc, engine, [projection], RunnerOptions(batch=batch, fetch_timeout=0.2)
    )
    task = asyncio.create_task(runner.run(stop))
    try:
        position = await _follow(engine, projection.name, target, progress, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)
    return RebuildSummary(
        projection.name,
        "stream",
        position.applied + position.ignored,
        position.applied,
        position.ignored,
        time.monotonic() - started,
    )


async def _follow(
    engine: Engine, name: str, target: int, progress: Progress, task: asyncio.Task[None]
) -> tracking.Position:
    """Polls the tracking row until it reaches `target`; a halt or a dead runner is an error."""
    while True:
        position, status = await asyncio.to_thread(_read, engine, name)
        progress(position.last_stream_seq, target)
        if position.last_stream_seq >= target:
            return position
        if status is not None and status.state == tracking.HALTED:
            raise RebuildError(
                f"{name} halted at stream sequence {status.halted_at_seq}: {status.error}; "
                "fix the cause, then `whistleloop projections resume` or `skip` it"
            )
        if task.done():
            task.result()
            raise RebuildError(f"{name}: the runner stopped before the end of the stream")
        await asyncio.sleep(0.25)


def _read(engine: Engine, name: str) -> tuple[tracking.Position, tracking.Status | None]:
    with engine.connect() as conn:
        return tracking.read_position(conn, name), tracking.read_status(conn, name)


async def rebuild_from_store(
    nc: Client,
    engine: Engine,
    service: CaseService,
    projection: Projection,
    progress: Progress,
    batch: int = 500,
) -> RebuildSummary:
    """Resets the projection and applies every stored event to it, batch by batch."""
    js = nc.jetstream()
    await refuse_if_live(js, projection.name)
    total = await asyncio.to_thread(_max_notification_id, service)
    await asyncio.to_thread(reset_projection, engine, projection)
    started, done = time.monotonic(), 0
    position = tracking.Position()
    loop = asyncio.get_running_loop()
    reader = StoreEnvelopes(service)
    last = 0
    while envelopes := await asyncio.to_thread(reader.after, last, batch):
        context = ApplyContext(loop, js, timeout=10.0)
        position = await asyncio.to_thread(_apply_batch, engine, projection, envelopes, context)
        last = envelopes[-1].notification_id
        done += len(envelopes)
        progress(last, total)
    await _align_stream_position(js, engine, projection.name, last)
    return RebuildSummary(
        projection.name,
        "store",
        done,
        position.applied,
        position.ignored,
        time.monotonic() - started,
    )


def _apply_batch(
    engine: Engine, projection: Projection, envelopes: list[EventEnvelope], context: ApplyContext
) -> tracking.Position:
    try:
        with engine.begin() as conn:
            position = tracking.lock_position(conn, projection.name)
            apply_envelopes(conn, projection, envelopes, context, position)
            tracking.save_position(conn, projection.name, position)
    except Exception as error:
        first, last = envelopes[0].notification_id, envelopes[-1].notification_id
        raise RebuildError(
            f"{projection.name}: applying events {first}–{last} from the store failed "
            f"({type(error).__name__}: {error}); nothing of that batch was written"
        ) from error
    return position


def _max_notification_id(service: CaseService) -> int:
    return int(service.recorder.max_notification_id() or 0)


async def _align_stream_position(
    js: JetStreamContext, engine: Engine, name: str, notification_id: int
) -> None:
    """Points the tracking row at the stream sequence of the last event applied from the store."""
    seq = await stream_seq_at_or_before(js, notification_id)

    def save() -> None:
        with engine.begin() as conn:
            position = tracking.lock_position(conn, name)
            position.last_stream_seq = seq
            tracking.save_position(conn, name, position)

    await asyncio.to_thread(save)


async def stream_seq_at_or_before(js: JetStreamContext, notification_id: int) -> int:
    """The last WL_EVENTS sequence whose event id is ≤ `notification_id` (0 if none), by bisection.

    Both numberings grow together (the relay publishes in notification order and the stream denies
    deletes), so a binary search over direct gets finds it in O(log n) lookups.
    """
    state = (await js.stream_info(EVENTS_STREAM)).state
    low, high, found = state.first_seq, state.last_seq, 0
    while low <= high:
        middle = (low + high) // 2
        if await _notification_at(js, middle) <= notification_id:
            found, low = middle, middle + 1
        else:
            high = middle - 1
    return found


async def _notification_at(js: JetStreamContext, seq: int) -> int:
    try:
        raw = await js.get_msg(EVENTS_STREAM, seq=seq)
    except NotFoundError:
        return 0
    value = (raw.headers or {}).get(HEADER_NOTIFICATION, "0")
    return int(value) if value.isdigit() else 0


async def refuse_if_live(js: JetStreamContext, name: str) -> None:
    """Refuses while a runner is pulling from the projection's consumer, or it is not a table."""
    if name in NOT_REBUILDABLE:
        raise RebuildError(NOT_REBUILDABLE[name])
    for attempt in range(3):
        try:
            info = await js.consumer_info(EVENTS_STREAM, consumer_name(name))
        except NotFoundError:
            return
        if info.num_waiting:
            raise RebuildError(
                f"{name} is being projected by a running `whistleloop project`; stop it first"
            )
        if attempt < 2:
            await asyncio.sleep(0.6)  # a live runner re-issues its pull within its fetch timeout
