"""Refuses request bodies over the configured size with 413, before any handler parses them.

The body is read here, up to one byte past the limit, and handed on in one piece: a client that lies in
Content-Length (or sends chunked) cannot make a handler buffer more than the limit.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.problems import problem_response


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        body = await read_body(receive, self.max_bytes + 1)
        if body is None:
            return  # the client went away
        if len(body) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        await self.app(scope, replay(body), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            "body_too_large",
            f"the request body is larger than {self.max_bytes} bytes",
            instance=scope.get("path"),
        )
        await response(scope, receive, send)


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or its first `limit` bytes; None when the client disconnected."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit or not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes) -> Receive:
    """A `receive` that yields the already-read body once, then waits like a live connection."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def json_document(body: bytes) -> Any:
    """The body parsed as JSON; ValueError for anything that is not JSON, including nesting too
    deep for the parser (which raises RecursionError: a 64 KiB body of `[` would otherwise be a
    500 wherever a body is parsed by hand)."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
