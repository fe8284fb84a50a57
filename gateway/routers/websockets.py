"""Live feeds over WebSocket: `/ws/command-centre`, `/ws/departments/{dept}`, `/ws/cases/{case_id}`.

The handshake is always accepted first, and a refusal is a close code after it (4001 no or bad
token, 4003 forbidden, 4004 no such case or department, 4400 bad `since`): a close before the accept
reaches a client only as HTTP 403 (a browser sees 1006), and then it cannot tell why. A browser
cannot set an Authorization header on a WebSocket, so the token comes as `?token=` or as the
subprotocols `["bearer", <token>]` (`bearer` is echoed on accept). The role and scope checks are
the REST ones (`gateway.policy`), made once, at connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from nats.js.errors import NotFoundError

from domain.errors import DomainError, ErrorKind
from gateway.auth import AuthError, Principal, decode_token
from gateway.feeds import (
    Feed,
    FeedSource,
    case_source,
    command_centre_source,
    department_source,
)
from gateway.policy import allowed, sees_case, sees_contact, sees_department
from gateway.resources import Resources

log = logging.getLogger(__name__)

router = APIRouter(tags=["feeds"])

BEARER = "bearer"
UNAUTHENTICATED = 4001
FORBIDDEN = 4003
NOT_FOUND = 4004
TOO_SLOW = 4008
BAD_REQUEST = 4400
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013
#: Seconds a close frame may wait behind a full send buffer: a client too slow to read its frames
#: may be too slow to read the close as well, and its consumer is already gone by then.
CLOSE_TIMEOUT = 5.0


_CLOSE_CODE_OF = {ErrorKind.NOT_FOUND: NOT_FOUND, ErrorKind.FORBIDDEN: FORBIDDEN}


class Refused(Exception):
    """The client may not have this feed; `code` is the close code that tells it why."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


SourceFor = Callable[[Principal, Resources], Awaitable[FeedSource]]


@router.websocket("/ws/command-centre", name="ws-command-centre")
async def command_centre_feed(websocket: WebSocket) -> None:
    """Every event of WL_EVENTS, as the command centre's wall shows it."""

    async def source(principal: Principal, resources: Resources) -> FeedSource:
        return command_centre_source()

    await serve_feed(websocket, "ws-command-centre", source)


@router.websocket("/ws/departments/{dept}", name="ws-department")
async def department_feed(websocket: WebSocket, dept: str) -> None:
    """One department's feed from WL_DEPT: every event of every case it is or was on."""

    async def source(principal: Principal, resources: Resources) -> FeedSource:
        if dept not in resources.reference.departments:
            raise Refused(NOT_FOUND, "no such department")
        if not sees_department(principal, dept):
            raise Refused(FORBIDDEN, "not your department")
        return department_source(dept)

    await serve_feed(websocket, "ws-department", source)


@router.websocket("/ws/cases/{case_id}", name="ws-case")
async def case_feed(websocket: WebSocket, case_id: str) -> None:
    """One case's events from WL_EVENTS, for whoever may read the case."""

    async def source(principal: Principal, resources: Resources) -> FeedSource:
        case = await _readable_case(resources, principal, case_id)
        return case_source(case)

    await serve_feed(websocket, "ws-case", source)


async def _readable_case(resources: Resources, principal: Principal, case_id: str) -> UUID:
    try:
        case = UUID(case_id)
        state = await asyncio.to_thread(resources.service.case, case)
    except ValueError:
        raise Refused(NOT_FOUND, "no such case") from None
    except DomainError as error:
        raise Refused(_CLOSE_CODE_OF.get(error.kind, BAD_REQUEST), error.code) from None
    if not sees_case(principal, state):
        raise Refused(FORBIDDEN, "not your case")
    return case


async def serve_feed(websocket: WebSocket, endpoint: str, source_for: SourceFor) -> None:
    """Accept, check, then stream until the client leaves or falls too far behind."""
    resources: Resources = websocket.app.state.resources
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=BEARER if BEARER in offered else None)
    try:
        principal = _principal(websocket, resources)
        if not allowed(principal, endpoint):
            raise Refused(FORBIDDEN, f"role {principal.role} may not open {endpoint}")
        since = _since(websocket)
        source = await source_for(principal, resources)
    except Refused as refusal:
        await _close(websocket, refusal.code, refusal.reason)
        return
    await _stream(
        websocket,
        resources,
        Feed(
            resources.js,
            source,
            since=since,
            queue_size=resources.settings.ws_queue,
            redact_contact=not sees_contact(principal),
        ),
    )


def _principal(websocket: WebSocket, resources: Resources) -> Principal:
    token = websocket.query_params.get("token") or _subprotocol_token(websocket)
    if not token:
        raise Refused(UNAUTHENTICATED, "send ?token= or subprotocols bearer, <token>")
    try:
        return decode_token(resources.settings, token)
    except AuthError as error:
        raise Refused(UNAUTHENTICATED, error.code) from None


def _subprotocol_token(websocket: WebSocket) -> str | None:
    offered: list[str] = list(websocket.scope.get("subprotocols") or [])
    if BEARER in offered and offered.index(BEARER) + 1 < len(offered):
        return offered[offered.index(BEARER) + 1]
    return None


def _since(websocket: WebSocket) -> int | None:
    raw = websocket.query_params.get("since")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise Refused(BAD_REQUEST, "since must be a stream sequence (an integer >= 0)")
    return int(raw)


async def _stream(websocket: WebSocket, resources: Resources, feed: Feed) -> None:
    label = feed.source.label
    if not resources.nc.is_connected:  # NATS is down or not reached yet: the client retries
        await _close(websocket, TRY_AGAIN_LATER, "NATS unavailable")
        return
    try:
        await feed.open()
    except NotFoundError:  # the relay or projectors have not created the stream yet
        await _close(websocket, TRY_AGAIN_LATER, "stream not ready")
        return
    except Exception:
        log.exception("could not open a live feed", extra={"feed": label})
        await feed.close()
        await _close(websocket, INTERNAL_ERROR, "feed unavailable")
        return
    clients = resources.metrics.ws_clients.labels(feed=label)
    clients.inc()
    try:
        await _pump_until_done(websocket, feed, resources.settings.ws_heartbeat)
    finally:
        await feed.close()
        clients.dec()
    if feed.dropped.is_set():
        resources.metrics.ws_dropped.labels(feed=label).inc()
        log.warning("dropped a slow feed client", extra={"feed": label, "stream_seq": feed.seq})
        await _close(websocket, TOO_SLOW, "too slow")


async def _pump_until_done(websocket: WebSocket, feed: Feed, heartbeat: float) -> None:
    """Runs until the client leaves (its receive ends or a send fails) or the feed drops it."""
    tasks = {
        asyncio.create_task(_send_frames(websocket, feed, heartbeat)),
        asyncio.create_task(_until_disconnect(websocket)),
        asyncio.create_task(feed.dropped.wait()),
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        error = task.exception()
        if error is not None and not isinstance(error, WebSocketDisconnect | OSError):
            log.error("live feed failed", exc_info=error, extra={"feed": feed.source.label})


async def _send_frames(websocket: WebSocket, feed: Feed, heartbeat: float) -> None:
    while True:
        await websocket.send_text(await feed.next_frame(heartbeat))


async def _until_disconnect(websocket: WebSocket) -> None:
    """Feeds are one-way: whatever the client sends is read only to notice it has gone."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code, reason), CLOSE_TIMEOUT)
