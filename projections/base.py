"""What a projection is to the runner: a name, the tables it owns, and `apply` for one event.

`apply` runs in a worker thread inside the batch's SQL transaction. A projection that needs NATS (the
`dept_feeds` re-publisher) goes through the `ApplyContext`: publications are buffered per event and sent,
with their acks awaited, just before the batch commits; stream reads block the worker thread while the
event loop does the I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import Connection, Table

from infra.event_codec import EventEnvelope

T = TypeVar("T")


class TransientError(RuntimeError):
    """NATS or the database is unavailable for now: retry the batch later, do not halt."""


class Projection(Protocol):
    """One read model. `apply` returns False for an event it does not handle (counted as ignored)."""

    @property
    def name(self) -> str: ...

    @property
    def tables(self) -> tuple[Table, ...]: ...

    @property
    def subjects(self) -> tuple[str, ...]:
        """The consumer's filter subjects on WL_EVENTS (non-overlapping), usually `("wl.ev.>",)`."""
        ...

    def apply(self, conn: Connection, envelope: EventEnvelope, context: ApplyContext) -> bool: ...


class BatchHooks(Protocol):
    """Optional: a projection with these buffers its writes per batch and writes them in bulk.

    The runner calls `begin_batch` first in each batch transaction (again when a batch is retried
    after a rollback, so buffers are cleared there, never carried over) and `end_batch` after the
    batch's last `apply`, before publications are flushed and the tracking row is saved: the
    buffered writes commit with the batch or not at all. It finds them with `getattr`.

    When `end_batch` fails on anything but an outage, the runner redoes the batch calling
    `end_batch` then `begin_batch` after every event, so the halt names the event at fault. State
    kept beyond a batch must be checked in `begin_batch` against the tracking row: `end_batch`
    returning does not mean the commit landed (`rollup.CaseCache` does this).
    """

    def begin_batch(self, conn: Connection) -> None: ...

    def end_batch(self, conn: Connection) -> None: ...


@dataclass(frozen=True)
class StoredMessage:
    """A message read back from a stream by sequence."""

    seq: int
    subject: str
    headers: dict[str, str]
    data: bytes


@dataclass(frozen=True)
class Publication:
    subject: str
    body: bytes
    headers: dict[str, str]


@dataclass
class ApplyContext:
    """NATS access for `apply`, from the worker thread that runs it."""

    loop: asyncio.AbstractEventLoop
    js: JetStreamContext
    timeout: float
    stream_seq: int = 0
    _pending: list[Publication] = field(default_factory=list)
    _ready: list[Publication] = field(default_factory=list)

    def publish(self, subject: str, body: bytes, headers: dict[str, str]) -> None:
        """Queues a JetStream publish; it is sent (acks awaited) before the batch commits.

        Give each publication a `Nats-Msg-Id`: a batch retried after a crash sends it again.
        """
        self._pending.append(Publication(subject, body, dict(headers)))

    def stream_messages(self, stream: str, subject: str, before_seq: int) -> list[StoredMessage]:
        """Every message of `stream` on `subject` (wildcards allowed) with a sequence < before_seq."""
        return self._call(read_messages(self.js, stream, subject, before_seq))

    # --- used by the runner ------------------------------------------------------------------

    def begin_event(self, stream_seq: int) -> None:
        self.stream_seq = stream_seq
        self._pending.clear()

    def end_event(self) -> None:
        """The event applied: its publications are kept (a failed event's are dropped)."""
        self._ready.extend(self._pending)
        self._pending.clear()

    def flush(self) -> int:
        """Sends the batch's publications in order and waits for every ack; returns how many."""
        ready, self._ready = self._ready, []
        if ready:
            self._call(_publish_all(self.js, ready, self.timeout))
        return len(ready)

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(self.timeout * 2)
        except TransientError:
            raise
        except Exception as error:  # NATS down, timeouts, API errors: retry the batch later
            future.cancel()
            raise TransientError(f"NATS: {type(error).__name__}: {error}") from error


async def read_messages(
    js: JetStreamContext, stream: str, subject: str, before_seq: int | None = None
) -> list[StoredMessage]:
    """A stream's messages on `subject` in order, by direct lookups (no consumer is created)."""
    before_seq = before_seq or 2**63
    found: list[StoredMessage] = []
    seq = 1
    while seq < before_seq:
        try:
            raw = await js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            break
        assert raw.seq is not None
        if raw.seq >= before_seq:
            break
        found.append(
            StoredMessage(raw.seq, raw.subject or "", dict(raw.headers or {}), raw.data or b"")
        )
        seq = raw.seq + 1
    return found


async def _publish_all(
    js: JetStreamContext, publications: list[Publication], timeout: float
) -> None:
    futures = [
        await js.publish_async(p.subject, p.body, headers=p.headers, wait_stall=timeout)
        for p in publications
    ]
    _done, pending = await asyncio.wait(futures, timeout=timeout)
    for future in pending:
        future.cancel()
    if pending:
        raise TransientError(f"{len(pending)} of {len(futures)} publish acks timed out")
    # An API error (no stream during a fail-over, …) raises here. Every future's exception is
    # retrieved, not only the first: asyncio logs each one left unread as an error of its own.
    errors = [error for future in futures if (error := future.exception()) is not None]
    if errors:
        raise errors[0]
