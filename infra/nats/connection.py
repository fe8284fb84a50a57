"""Connecting to NATS with reconnect forever, logged state changes, and a drain on the way out."""

from __future__ import annotations

import logging
from typing import Any

import nats
from nats.aio.client import Client

log = logging.getLogger(__name__)


async def connect(
    url: str,
    *,
    name: str,
    user: str | None = None,
    password: str | None = None,
    inbox_prefix: str | None = None,
    **options: Any,
) -> Client:
    """A client that reconnects without limit: processes outlive server restarts and fail-overs."""

    async def error_cb(error: Exception) -> None:
        log.warning("nats error: %s", error, extra={"client": name})

    async def disconnected_cb() -> None:
        log.warning("nats disconnected", extra={"client": name})

    async def reconnected_cb() -> None:
        log.info("nats reconnected", extra={"client": name})

    extra: dict[str, Any] = {}
    if user is not None:
        extra.update(user=user, password=password)
    if inbox_prefix is not None:
        extra["inbox_prefix"] = inbox_prefix
    return await nats.connect(
        servers=url.split(","),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=3,
        error_cb=error_cb,
        disconnected_cb=disconnected_cb,
        reconnected_cb=reconnected_cb,
        **extra,
        **options,
    )
