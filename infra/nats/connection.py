"""Connecting to NATS with reconnect forever, logged state changes, and a drain on the way out."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client

from infra.settings import Settings

log = logging.getLogger(__name__)


async def connect(
    url: str,
    *,
    name: str,
    user: str | None = None,
    password: str | None = None,
    inbox_prefix: str | None = None,
    on_error: Callable[[Exception], Awaitable[None]] | None = None,
    client: Client | None = None,
    **options: Any,
) -> Client:
    """A client that reconnects without limit: processes outlive server restarts and fail-overs.

    Errors are logged; `on_error` also sees them (permission denials arrive only this way). With
    `client`, that (unconnected) client is connected: a caller may hand it out before the server
    answers, e.g. to serve health checks while NATS is down.
    """

    async def error_cb(error: Exception) -> None:
        log.warning("nats error: %s", error, extra={"client": name})
        if on_error is not None:
            await on_error(error)

    nc = client or Client()

    async def disconnected_cb() -> None:
        closing = nc.is_closed or nc.is_draining
        log.log(
            logging.DEBUG if closing else logging.WARNING,
            "nats disconnected",
            extra={"client": name},
        )

    async def reconnected_cb() -> None:
        log.info("nats reconnected", extra={"client": name})

    extra: dict[str, Any] = {
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 3,
        **options,
    }
    if user is not None:
        extra.update(user=user, password=password)
    if inbox_prefix is not None:
        extra["inbox_prefix"] = inbox_prefix
    await nc.connect(
        servers=url.split(","),
        name=name,
        error_cb=error_cb,
        disconnected_cb=disconnected_cb,
        reconnected_cb=reconnected_cb,
        **extra,
    )
    return nc


async def connect_service(settings: Settings, name: str, **options: Any) -> Client:
    """This process's connection as the configured service user (none without accounts)."""
    return await connect(
        settings.nats_servers(),
        name=name,
        user=settings.nats_user or None,
        password=settings.nats_password or None,
        **options,
    )


#: Connection attempts of a command that runs once (about 5 s), rather than a service's forever.
ONE_SHOT_ATTEMPTS = 10


async def connect_once(settings: Settings, name: str) -> Client:
    """Like `connect_service`, for a command an operator waits on: gives up (NoServersError) when
    no server answers within a few seconds, so the command can say so instead of hanging."""
    return await connect_service(settings, name, max_reconnect_attempts=ONE_SHOT_ATTEMPTS)
