"""The JetStream streams of DESIGN.md, created idempotently (safe to run from every process)."""

from __future__ import annotations

import asyncio
import contextlib

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

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
        StreamConfig(name=AUDIT_STREAM, subjects=[AUDIT_SUBJECTS], deny_delete=True, **common),  # type: ignore[arg-type]
    ]


async def ensure_streams(
    js: JetStreamContext, replicas: int = 1, placement_timeout: float = 30.0
) -> None:
    """Creates the streams, or brings an existing one's config up to date.

    Never lowers an existing stream's replica count: a process started without the cluster's
    setting must not quietly turn an R3 stream into R1.
    """
    for config in stream_configs(replicas):
        assert config.name is not None
        try:
            info = await js.stream_info(config.name)
        except NotFoundError:
            await _add_stream(js, config, placement_timeout)
            continue
        config.num_replicas = max(replicas, info.config.num_replicas or 1)
        with contextlib.suppress(BadRequestError):  # e.g. a change the server cannot make in place
            await js.update_stream(config)


async def _add_stream(js: JetStreamContext, config: StreamConfig, placement_timeout: float) -> None:
    """A cluster elects its meta leader before every peer has reported in: an R3 stream asked for
    in that moment is refused with "no suitable peers", which passes once the peers are known."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + placement_timeout
    while True:
        try:
            await js.add_stream(config)
            return
        except BadRequestError as error:
            if error.err_code != NO_SUITABLE_PEERS or loop.time() > deadline:
                raise
            await asyncio.sleep(0.25)
