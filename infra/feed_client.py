"""`whistleloop feed`: tail one department's live feed from the gateway, surviving disconnects.

The client remembers the last stream sequence it saw (from event frames and heartbeats alike) and
reconnects with `since=<that sequence>`, so after a dropped connection, a gateway restart or a 4008
"too slow" it gets exactly the frames it missed, in order, and none twice. A refusal (bad token,
forbidden, unknown department) is final: retrying cannot fix it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from infra.signals import stop_on_signals

log = logging.getLogger(__name__)

Frame = dict[str, Any]
OnFrame = Callable[[Frame], Awaitable[None] | None]

#: Close codes that mean "not for you": the same request will be refused again.
REFUSALS = {
    4001: "no or bad token",
    4003: "forbidden",
    4004: "no such department",
    4400: "bad request",
}
FIRST_DELAY = 0.5
MAX_DELAY = 30.0


class FeedRefused(Exception):
    """The gateway refused the feed (close code 4001, 4003, 4004 or 4400)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {REFUSALS.get(code, '')}: {reason}".strip())
        self.code = code
        self.reason = reason


def feed_url(base_url: str, dept: str, since: int | None) -> str:
    """`http(s)://` or `ws(s)://` base → the department feed's WebSocket URL (resuming after `since`)."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not an http(s) or ws(s) URL: {base_url}")
    path = f"{parts.path.rstrip('/')}/ws/departments/{quote(dept, safe='')}"
    query = f"since={since}" if since is not None else ""
    return urlunsplit((scheme, parts.netloc, path, query, ""))


async def tail_department(
    url: str,
    token: str,
    dept: str,
    since: int | None,
    on_frame: OnFrame,
    stop: asyncio.Event,
) -> int | None:
    """Hands every frame to `on_frame` until `stop` is set; returns the last sequence seen.

    Reconnects with exponential backoff (with jitter, capped at MAX_DELAY) after anything but a
    refusal, which raises FeedRefused.
    """
    position = _Position(since)
    delay = FIRST_DELAY
    while not stop.is_set():
        try:
            async with connect(
                feed_url(url, dept, position.last),
                subprotocols=[Subprotocol("bearer"), Subprotocol(token)],
            ) as websocket:
                delay = FIRST_DELAY
                await position.follow(websocket, on_frame, stop)
        except ConnectionClosed as closed:
            received = closed.rcvd
            if received is not None and received.code in REFUSALS:
                raise FeedRefused(received.code, received.reason) from None
            log.warning("feed connection closed, resuming", extra={"since": position.last})
        except (OSError, InvalidHandshake, TimeoutError) as error:
            log.warning("feed unreachable: %s", error, extra={"since": position.last})
        if stop.is_set():
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay * random.uniform(0.5, 1.0))
        delay = min(delay * 2, MAX_DELAY)
    return position.last


class _Position:
    """The last stream sequence seen, kept across connections: the next one resumes after it."""

    def __init__(self, since: int | None) -> None:
        self.last = since

    async def follow(
        self, websocket: ClientConnection, on_frame: OnFrame, stop: asyncio.Event
    ) -> None:
        """Reads frames until `stop`; raises ConnectionClosed when the gateway goes away."""
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                receiving = asyncio.create_task(websocket.recv())
                await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    receiving.cancel()
                    return
                await self._take(json.loads(receiving.result()), on_frame)
        finally:
            stopping.cancel()

    async def _take(self, frame: Frame, on_frame: OnFrame) -> None:
        seq = int(frame.get("seq", 0))
        if frame.get("type") == "event" and self.last is not None and seq <= self.last:
            return  # already handed out before a reconnect: never twice
        self.last = seq if self.last is None else max(self.last, seq)
        result = on_frame(frame)
        if result is not None:
            await result


def run_feed(url: str, token: str, dept: str, since: int | None, out: TextIO = sys.stdout) -> int:
    """The command's body: one JSON line per frame on `out` until Ctrl-C/SIGTERM; exit status."""

    def emit(frame: Frame) -> None:
        out.write(json.dumps(frame, ensure_ascii=False) + "\n")
        out.flush()

    try:
        feed_url(url, dept, since)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    async def main() -> int:
        stop = stop_on_signals()
        try:
            await tail_department(url, token, dept, since, emit, stop)
        except FeedRefused as refusal:
            print(f"error: the gateway refused the feed: {refusal}", file=sys.stderr)
            return 1
        return 0

    return asyncio.run(main())
