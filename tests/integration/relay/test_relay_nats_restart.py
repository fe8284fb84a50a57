"""The NATS server goes away and comes back while the relay runs and commands keep coming in."""

from __future__ import annotations

import asyncio
import threading

import pytest
from eventsourcing.persistence import StoredEvent

from domain.actors import Actor
from domain.clock import ManualClock
from domain.service import CaseService
from infra.nats.server import NatsServer
from infra.relay import Nudger
from infra.settings import Settings
from tests.integration.builders import drive
from tests.integration.relay.support import (
    assert_stream_equals_log,
    insert_cases,
    nats_client,
    running_relay,
    wait_for,
    wait_until_relayed,
)

pytestmark = pytest.mark.asyncio


async def test_server_restart_loses_nothing_and_repeats_nothing(
    service: CaseService,
    relay_settings: Settings,
    nats_server: NatsServer,
    clock: ManualClock,
    actors: dict[str, Actor],
    template: list[StoredEvent],
) -> None:
    """A backlog keeps the relay busy, so the restart lands while batches are in flight."""
    insert_cases(service, template, 6000)
    url = relay_settings.nats_url
    nc = await nats_client(url)
    service.after_save.append(Nudger(nc, asyncio.get_running_loop()))
    stop_writing = threading.Event()

    def write() -> int:
        cases = 0
        while not stop_writing.is_set():
            drive(service, clock, actors, "closed")
            cases += 1
        return cases

    async with running_relay(service, relay_settings) as relay:
        writer = asyncio.create_task(asyncio.to_thread(write))
        await wait_for(lambda: relay.stats.relayed >= 100, 20, "the relay to get going")
        await asyncio.to_thread(nats_server.restart)  # same port, same store directory
        before = relay.stats.relayed
        await wait_for(
            lambda: relay.stats.relayed >= before + 100, 30, "relaying after the restart"
        )
        stop_writing.set()
        cases = await asyncio.wait_for(writer, 30)
        await wait_until_relayed(url, service, timeout=30)
    await nc.close()
    stream = await assert_stream_equals_log(url, service)
    assert cases > 0
    # Messages the server stored while their acks were lost in the restart are neither "relayed" nor
    # "duplicates" for the relay (the next resume point is past them), so the count can fall short
    # of the stream, never exceed it: the stream itself, checked above, is what must be exact.
    assert relay.stats.relayed <= len(stream)
