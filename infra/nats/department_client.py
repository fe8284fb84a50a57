"""What a department runs to read its own feed: its durable consumer `dept_<code>` on WL_DEPT.

A department user (account DEPTS, see `infra.nats.accounts`) may only ask its own consumer for the next
messages, ack them, and receive on its own inbox prefix. So it must connect with that prefix, and bind
to the consumer with `pull_subscribe_bind` (`pull_subscribe` asks for CONSUMER.INFO, which is denied).
The server never answers a denied request: the call just times out, and the reason arrives later on
the connection's error callback. This client keeps those reasons and raises them instead of an empty
timeout, so a misconfigured department sees "permissions violation …", not silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from infra.nats.accounts import department_consumer, department_inbox, department_user
from infra.nats.connection import connect
from infra.nats.streams import DEPT_STREAM

log = logging.getLogger(__name__)


class DepartmentDenied(Exception):
    """The server refused this department something (bad password, or a subject it may not use)."""


@dataclass
class Denials:
    """Error reports from the server, in arrival order; `since(n)` = the ones after the n-th."""

    code: str
    reasons: list[str] = field(default_factory=list)
    refused_login: asyncio.Event = field(default_factory=asyncio.Event)

    async def record(self, error: Exception) -> None:
        reason = str(error) or type(error).__name__
        self.reasons.append(reason)
        log.warning("nats error for department: %s", reason, extra={"department": self.code})
        if "authorization violation" in reason.lower():
            self.refused_login.set()

    def since(self, count: int) -> list[str]:
        return [r for r in self.reasons[count:] if "violation" in r.lower()]


async def _connect(url: str, code: str, password: str, denials: Denials, timeout: float) -> Client:
    """Reconnects forever once in, but a refused login fails at once instead of retrying blind."""
    connecting = asyncio.ensure_future(
        connect(
            url,
            name=f"department-{code}",
            user=department_user(code),
            password=password,
            inbox_prefix=department_inbox(code),
            connect_timeout=min(timeout, 3.0),
            on_error=denials.record,
        )
    )
    refused = asyncio.ensure_future(denials.refused_login.wait())
    done, _ = await asyncio.wait(
        {connecting, refused}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
    )
    refused.cancel()
    if connecting in done:
        return connecting.result()
    connecting.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await connecting
    reason = "; ".join(denials.reasons) or f"no answer within {timeout:g} s"
    raise DepartmentDenied(f"department {code} could not connect to {url}: {reason}")


@dataclass
class DepartmentFeed:
    """A connected department bound to its own consumer; fetch, process, then `ack`."""

    code: str
    client: Client
    subscription: JetStreamContext.PullSubscription
    denials: Denials

    @classmethod
    async def open(
        cls, url: str, code: str, password: str, *, timeout: float = 5.0
    ) -> DepartmentFeed:
        denials = Denials(code)
        client = await _connect(url, code, password, denials, timeout)
        subscription = await client.jetstream().pull_subscribe_bind(
            department_consumer(code), stream=DEPT_STREAM
        )
        return cls(code, client, subscription, denials)

    async def fetch(self, batch: int = 100, timeout: float = 2.0) -> list[Msg]:
        """Up to `batch` messages in stream order; [] if none came within `timeout`.

        Raises DepartmentDenied when the server reported a denial while we waited (a timeout then
        means "refused", not "nothing new").
        """
        seen = len(self.denials.reasons)
        try:
            return await self.subscription.fetch(batch, timeout=timeout)
        except TimeoutError:  # nats-py's own, or asyncio's when the deadline falls between pulls
            await self._raise_denials(seen)
            return []

    async def ack(self, messages: Sequence[Msg], timeout: float = 2.0) -> None:
        """Acks each message; a denied ack is only reported by the server, so flush and check."""
        seen = len(self.denials.reasons)
        for message in messages:
            await message.ack()
        # nats-py writes the PING straight to the socket, ahead of acks still in its buffer: the
        # second round trip is the one that comes back after the server has seen them all.
        for _ in range(2):
            await self.client.flush(timeout=max(1, round(timeout)))
        await self._raise_denials(seen)

    async def _raise_denials(self, seen: int) -> None:
        await asyncio.sleep(0)  # let an error read with the same packet reach the callback
        denied = self.denials.since(seen)
        if denied:
            raise DepartmentDenied(f"department {self.code}: " + "; ".join(denied))

    async def close(self) -> None:
        """Close, not drain: nats-py's drain of a pull subscription waits out its 30 s timeout, and
        nothing is in flight that needs it (`ack` flushes; unacked messages return after ack_wait)."""
        if not self.client.is_closed:
            await self.client.close()
