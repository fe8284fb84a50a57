"""How a long-running command stops on SIGINT/SIGTERM, whatever it is waiting for.

A command sets up its stop event and hands its work to `until_stopped`. The work sees `stop` and
ends cleanly (drain NATS, release a lock, close the store); but work still waiting for a server
that is not there (a NATS connect retries for ever) never looks at `stop`, and a relay in that
state once ignored SIGTERM until it was SIGKILLed. So after the signal the work gets `GRACE`
seconds to end on its own, and is then cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: Seconds the work has, after the signal, to end on its own (a relay drains NATS within 10 s).
GRACE = 15.0


def stop_on_signals() -> asyncio.Event:
    """An event that SIGINT and SIGTERM set; call it inside the running loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def until_stopped(
    work: Callable[[asyncio.Event], Awaitable[None]], grace: float = GRACE
) -> None:
    """Runs `work(stop)` until it returns, or until a signal and then at most `grace` seconds."""
    stop = stop_on_signals()
    task = asyncio.ensure_future(work(stop))
    signalled = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, signalled}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=grace)
        if not task.done():
            log.warning("still busy %g s after the signal: cancelled", grace)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        await task  # its own error, if it failed
    finally:
        signalled.cancel()
