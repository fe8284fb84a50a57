"""A nudge on `wl.relay.nudge` after a commit wakes the relay; it does not wait for the next poll."""

from __future__ import annotations

import asyncio

import pytest

from domain.actors import Actor
from domain.clock import ManualClock
from domain.service import CaseService
from infra.relay import Nudger
from infra.settings import Settings
from tests.integration.builders import report_case
from tests.integration.relay.support import (
    assert_stream_equals_log,
    last_relayed,
    nats_client,
    running_relay,
    wait_until_relayed,
)

pytestmark = pytest.mark.asyncio

#: Far longer than any wait below: only a nudge can get an event out in time.
POLL_INTERVAL = 30.0


async def test_a_commit_with_a_nudge_is_relayed_without_waiting_for_the_poll(
    service: CaseService, relay_settings: Settings, clock: ManualClock, actors: dict[str, Actor]
) -> None:
    settings = relay_settings.model_copy(update={"relay_poll_interval": POLL_INTERVAL})
    url = settings.nats_url
    nc = await nats_client(url)
    try:
        async with running_relay(service, settings):
            await wait_until_relayed(url, service, timeout=10)  # the duty list; now it sleeps

            report_case(service, actors)  # committed, nobody nudges
            await asyncio.sleep(1.0)
            assert await last_relayed(url) < (service.recorder.max_notification_id() or 0)

            service.after_save.append(Nudger(nc, asyncio.get_running_loop()))
            report_case(service, actors)
            await wait_until_relayed(url, service, timeout=5)
    finally:
        await nc.close()
    await assert_stream_equals_log(url, service)
