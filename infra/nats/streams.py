"""The JetStream streams of DESIGN.md, created idempotently (safe to run from every process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, BadRequestError, NotFoundError, ServiceUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")

EVENTS_STREAM = "WL_EVENTS"
DEPT_STREAM = "WL_DEPT"
AUDIT_STREAM = "WL_AUDIT"

EVENTS_SUBJECTS = "wl.ev.>"
DEPT_SUBJECTS = "wl.dept.>"
AUDIT_SUBJECTS = "wl.audit.>"

#: Core-NATS subject (not a stream) that wakes the relay after a commit.
NUDGE_SUBJECT = "wl.relay.nudge"

#: JetStream's error code when a cluster does not (yet) know enough peers for the replica count.
NO_SUITABLE_PEERS = 10005
#: Seconds a set-up call is tried again while its refusals are transient (see `settled`).
SETTLE_TIMEOUT = 60.0

#: Re-sends after a crash or fail-over land inside this window and are dropped by Nats-Msg-Id.
DUPLICATE_WINDOW_SECONDS = 10 * 60


def stream_configs(replicas: int = 1) -> list[StreamConfig]:
    """Keep everything (limits retention, no age limit); the event log may not be deleted or purged."""
    common = {
        "retention": RetentionPolicy.LIMITS,
        "storage": StorageType.FILE,
        "discard": DiscardPolicy.OLD,
        "num_replicas": replicas,
        "duplicate_window": DUPLICATE_WINDOW_SECONDS,
        "allow_direct": True,
    }
    return [
        StreamConfig(
            name=EVENTS_STREAM,
            subjects=[EVENTS_SUBJECTS],
            deny_delete=True,
            deny_purge=True,
            **common,  # type: ignore[arg-type]
        ),
        StreamConfig(name=DEPT_STREAM, subjects=[DEPT_SUBJECTS], deny_delete=True, **common),  # type: ignore[arg-type]
        StreamConfig(
            name=AUDIT_STREAM,
            subjects=[AUDIT_SUBJECTS],
            deny_delete=True,
            deny_purge=True,  # the public copy of every signed head (audit verify names a gap)
            **common,  # type: ignore[arg-type]
        ),
    ]


def transient(error: Exception) -> bool:
    """What a cluster answers while it elects a leader or has a node down: "no suitable peers"
    before every peer has reported in, 503 (temporarily unavailable, insufficient resources for
    an R3 consumer), or no answer at all. Each passes within seconds."""
    no_answer = nats.errors.TimeoutError | nats.errors.NoRespondersError
    if isinstance(error, no_answer | ServiceUnavailableError):
        return True
    return isinstance(error, APIError) and error.err_code == NO_SUITABLE_PEERS


async def settled(setup: Callable[[], Awaitable[T]], timeout: float = SETTLE_TIMEOUT) -> T:
    """Runs an idempotent JetStream set-up, again while its refusals are `transient`.

    A process (re)started while a node of the cluster is down or a leader is being elected would
    otherwise die at start-up: the chaos run found a relay and a projector that did.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await setup()
        except Exception as error:
            if not transient(error) or loop.time() > deadline:
                raise
            log.warning("JetStream not ready, trying again: %s", error)
            await asyncio.sleep(0.5)


async def ensure_streams(
    js: JetStreamContext, replicas: int = 1, placement_timeout: float = SETTLE_TIMEOUT
) -> None:
    """Creates the streams, or brings an existing one's config up to date, once the cluster lets
    it (`settled` within `placement_timeout`).

    Never lowers an existing stream's replica count: a process started without the cluster's
    setting must not quietly turn an R3 stream into R1.
    """
    await settled(lambda: _ensure_streams(js, replicas), placement_timeout)


async def _ensure_streams(js: JetStreamContext, replicas: int) -> None:
    for config in stream_configs(replicas):
        assert config.name is not None
        try:
            info = await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
            continue
        config.num_replicas = max(replicas, info.config.num_replicas or 1)
        with contextlib.suppress(BadRequestError):  # e.g. a change the server cannot make in place
            await js.update_stream(config)
