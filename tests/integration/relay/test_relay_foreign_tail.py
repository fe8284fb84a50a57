"""Something other than the relay got a message onto the end of WL_EVENTS.

Decided behaviour: the relay does not guess where it stands (skipping the foreign message would mean
trusting the message before it; continuing after it would break the chain). It publishes nothing,
logs an error naming the message's stream sequence on every retry, and reports it in `stats.blocked`,
still holding its lock, until an operator has dealt with the message. A new relay does the same.
"""

from __future__ import annotations

import logging

import pytest

from domain.actors import Actor
from domain.clock import ManualClock
from domain.service import CaseService
from infra.event_codec import HEADER_NOTIFICATION
from infra.settings import Settings
from tests.integration.builders import drive
from tests.integration.relay.support import (
    nats_client,
    read_stream,
    running_relay,
    wait_for,
    wait_until_relayed,
)

pytestmark = pytest.mark.asyncio


async def test_a_foreign_last_message_blocks_the_relay_loudly(
    service: CaseService,
    relay_settings: Settings,
    clock: ManualClock,
    actors: dict[str, Actor],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = relay_settings.nats_url
    async with running_relay(service, relay_settings) as relay:
        await wait_until_relayed(url, service, timeout=10)
        relayed = relay.stats.relayed
        nc = await nats_client(url)
        ack = await nc.jetstream().publish("wl.ev.jianwai.intruder.CaseClosed", b"{}")
        await nc.close()
        drive(service, clock, actors, "accepted")
        await wait_for(lambda: relay.stats.blocked is not None, 15, "the relay to refuse")
    assert relay.stats.relayed == relayed

    async with running_relay(service, relay_settings) as fresh:
        await wait_for(lambda: fresh.stats.blocked is not None, 15, "a new relay to refuse")
    assert fresh.stats.relayed == 0

    for blocked in (relay.stats.blocked, fresh.stats.blocked):
        assert f"stream seq {ack.seq}" in str(blocked)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors
    assert all(getattr(r, "stream_seq", None) == ack.seq for r in errors)
    stream = await read_stream(url)
    assert stream[-1].seq == ack.seq
    assert HEADER_NOTIFICATION not in stream[-1].headers
    assert all(HEADER_NOTIFICATION in m.headers for m in stream[:-1])
