"""Writes per caller, limited: a token bucket per principal, in each gateway process.

A department's script gone wrong, or a stolen token, must not fill the event store or starve the
other callers. Only writes (POST) are limited: reads are served from read models and cost little.
The caller is the one `Idempotency-Key`s belong to (`caller_scope`: the token's principal, or an
Open311 `api_key`), so a refreshed token keeps its bucket. Behind a load balancer each gateway
keeps its own buckets: N gateways admit up to N times the rate; that is the price of keeping
gateways stateless, and it still bounds a runaway caller.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.body_limit import read_body, replay
from gateway.idempotency import caller_scope
from gateway.problems import problem_response

#: Buckets kept before the idle (full) ones are dropped: bounds memory under many callers.
MAX_BUCKETS = 10_000


class TokenBuckets:
    """`rate` writes per second per caller, up to `burst` at once after a quiet spell."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}  # caller → (tokens, when counted)

    def take(self, caller: str) -> float:
        """0 when the caller may write now (and a token is taken); else seconds until it may."""
        now = self.clock()
        tokens, counted = self.buckets.get(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - counted) * self.rate)
        if tokens >= 1:
            self.buckets[caller] = (tokens - 1, now)
            self._bound(now)
            return 0.0
        self.buckets[caller] = (tokens, now)
        return (1 - tokens) / self.rate

    def _bound(self, now: float) -> None:
        if len(self.buckets) <= MAX_BUCKETS:
            return
        refill = self.burst / self.rate  # a bucket idle this long is full again: forget it
        self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < refill}


class RateLimit:
    """ASGI middleware in front of `Idempotency`: a refused write claims no key. Its 429 is a
    problem document on every path, Open311's included, like the other middleware refusals."""

    def __init__(self, app: ASGIApp, rate: float, burst: int, max_body: int) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate, burst) if rate > 0 else None
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.buckets is None or scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await read_body(receive, self.max_body + 1)
        if body is None:
            return
        wait = self.buckets.take(caller_scope(scope, body))
        if wait > 0:
            await problem_response(
                429,
                "rate_limited",
                f"more than {self.buckets.rate:g} writes per second from this caller; "
                "retry after the time given",
                instance=scope.get("path"),
                headers={"Retry-After": str(math.ceil(wait))},
            )(scope, receive, send)
            return
        await self.app(scope, replay(body), send)
