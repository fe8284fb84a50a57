"""Helpers of the account-isolation tests: clients that record denials, and the server's state to compare.

A denied publish or subscribe is never answered: the server sends `-ERR 'Permissions Violation …'`
and the client hands it to `error_cb`. The server handles one connection's protocol in order, so once
a PING sent after the attempt is answered, its denial has arrived. nats-py writes PING straight to the
socket, ahead of publishes still in its buffer, hence `settle`: two round trips, not one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import SequenceInfo

from infra.nats.accounts import Credentials

#: Departments of the shipped reference data used in these tests: the reader and the other one.
OWN, OTHER = "cgzf", "zj"
#: Seeded feed: (department, case) pairs in publish order, interleaved between departments.
FEED = [(OWN, "c1"), (OTHER, "c1"), (OWN, "c2"), (OTHER, "c2"), (OWN, "c1"), (OTHER, "c3")]
#: The projector's durable consumer on WL_EVENTS (something a department must not reach).
PROJECTOR_CONSUMER = "dept_feeds"
#: Short: a denied request is never answered, so every such wait runs to its end.
DENIED_TIMEOUT = 0.5


def dept_subject(code: str, case: str, index: int) -> str:
    return f"wl.dept.{code}.{case}.Event{index}"


def feed_of(code: str) -> list[str]:
    """The subjects of `code`'s seeded messages, in stream order."""
    return [dept_subject(c, case, i) for i, (c, case) in enumerate(FEED) if c == code]


def dept_seqs(code: str) -> list[int]:
    """WL_DEPT sequences of `code`'s seeded messages (the stream holds nothing else)."""
    return [index + 1 for index, (c, _) in enumerate(FEED) if c == code]


@dataclass
class Recorder:
    """Keeps every error the server reports to one connection."""

    errors: list[str] = field(default_factory=list)

    async def record(self, error: Exception) -> None:
        self.errors.append(str(error).lower())

    def violations(self, since: int = 0) -> list[str]:
        return [e for e in self.errors[since:] if "violation" in e]


async def settle(client: Client) -> None:
    """Returns once the server has processed everything sent before (see the module docstring)."""
    await client.flush(timeout=2)
    await client.flush(timeout=2)


@dataclass
class Probe:
    """A connection whose denials can be asked for: `await probe.denied(action)` → the reasons."""

    client: Client
    recorder: Recorder

    def jetstream(self) -> JetStreamContext:
        return self.client.jetstream(timeout=DENIED_TIMEOUT)

    async def denied(self, action: Callable[[], Awaitable[object]]) -> list[str]:
        """Runs `action` (a timeout is the expected outcome of a denied request) and returns the
        permission violations the server reported for it."""
        seen = len(self.recorder.errors)
        with contextlib.suppress(nats.errors.TimeoutError, asyncio.TimeoutError):
            await action()
        await settle(self.client)
        return self.recorder.violations(seen)

    async def close(self) -> None:
        if not self.client.is_closed:
            await self.client.close()


async def connect_probe(
    url: str, user: str, password: str, inbox_prefix: str | None = None
) -> Probe:
    recorder = Recorder()
    options = {} if inbox_prefix is None else {"inbox_prefix": inbox_prefix}
    client = await nats.connect(
        url,
        user=user,
        password=password,
        error_cb=recorder.record,
        allow_reconnect=False,
        connect_timeout=3,
        **options,
    )
    return Probe(client, recorder)


@contextlib.asynccontextmanager
async def probe(
    url: str, user: str, password: str, inbox_prefix: str | None = None
) -> AsyncIterator[Probe]:
    connected = await connect_probe(url, user, password, inbox_prefix)
    try:
        yield connected
    finally:
        await connected.close()


@dataclass(frozen=True)
class Secured:
    """A running server with the generated accounts, seeded, and the admin's JetStream context."""

    url: str
    credentials: Credentials
    admin: JetStreamContext

    def service(self, name: str) -> tuple[str, str]:
        return name, self.credentials.services[name]


ConsumerState = tuple[int, int, int, int]


async def server_state(js: JetStreamContext, ignore: str = "") -> dict[str, object]:
    """Streams with their message counts and sequence range, consumers with their progress.

    `ignore`: a consumer whose progress may move (the one a test's department pulls from); its
    existence is still part of the state.
    """
    state: dict[str, object] = {}
    for info in await js.streams_info():
        name = info.config.name or ""
        consumers: dict[str, ConsumerState | None] = {}
        for consumer in await js.consumers_info(name):
            progress = (
                _stream_seq(consumer.delivered),
                _stream_seq(consumer.ack_floor),
                consumer.num_ack_pending or 0,
                consumer.num_pending or 0,
            )
            consumers[consumer.name] = None if consumer.name == ignore else progress
        state[f"stream {name}"] = (info.state.messages, info.state.first_seq, info.state.last_seq)
        state[f"consumers {name}"] = consumers
    return state


def _stream_seq(sequence: SequenceInfo | None) -> int:
    return 0 if sequence is None else sequence.stream_seq or 0
