"""`until_stopped`: work that heeds the signal ends as it likes; work that cannot is cancelled."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from infra.signals import until_stopped


def signal_soon() -> None:
    asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)


def test_work_that_heeds_the_signal_ends_cleanly() -> None:
    ended: list[str] = []

    async def work(stop: asyncio.Event) -> None:
        signal_soon()
        await stop.wait()
        await asyncio.sleep(0.1)  # a drain
        ended.append("cleanly")

    asyncio.run(until_stopped(work, grace=5))
    assert ended == ["cleanly"]


def test_work_stuck_past_the_grace_is_cancelled() -> None:
    cancelled: list[bool] = []

    async def work(stop: asyncio.Event) -> None:
        signal_soon()
        try:
            await asyncio.sleep(60)  # a connect to a server that is not there
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    asyncio.run(asyncio.wait_for(until_stopped(work, grace=0.2), timeout=5))
    assert cancelled == [True]


def test_an_error_of_the_work_is_raised() -> None:
    async def work(stop: asyncio.Event) -> None:
        raise RuntimeError("store unreachable")

    with pytest.raises(RuntimeError, match="store unreachable"):
        asyncio.run(until_stopped(work))
