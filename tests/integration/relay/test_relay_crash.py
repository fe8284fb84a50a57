"""A relay killed with SIGKILL in the middle of its work, again and again, loses and repeats nothing."""

from __future__ import annotations

import asyncio
import random
from functools import partial
from pathlib import Path

import pytest
from eventsourcing.persistence import StoredEvent

from domain.service import CaseService
from infra.settings import Settings
from tests.integration.relay.support import (
    RelayProcess,
    assert_stream_equals_log,
    insert_cases,
    last_relayed,
    wait_for,
    wait_until_relayed,
)

pytestmark = pytest.mark.asyncio

ROUNDS = 4
EVENTS_PER_ROUND = 2000


async def test_kill_9_mid_relay_repeatedly_leaves_every_event_once_in_order(
    service: CaseService,
    relay_settings: Settings,
    template: list[StoredEvent],
    relay_procs: list[RelayProcess],
    tmp_path: Path,
) -> None:
    settings = relay_settings.model_copy(update={"relay_batch": 100})
    url = settings.nats_url
    killed_mid_relay = 0
    for round_ in range(ROUNDS):
        insert_cases(service, template, EVENTS_PER_ROUND)
        before = await last_relayed(url)
        relay = RelayProcess.start(settings, tmp_path / f"relay-{round_}.log")
        relay_procs.append(relay)
        await wait_for(
            partial(_past, url, before),
            timeout=30,
            what="the relay to publish",
            interval=0.01,
        )
        await asyncio.sleep(random.uniform(0, 0.1))
        relay.kill()
        if await last_relayed(url) < (service.recorder.max_notification_id() or 0):
            killed_mid_relay += 1
    relay_procs.append(RelayProcess.start(settings, tmp_path / "relay-last.log"))
    await wait_until_relayed(url, service, timeout=60)
    stream = await assert_stream_equals_log(url, service)
    assert len(stream) > ROUNDS * EVENTS_PER_ROUND
    assert killed_mid_relay >= 3, "the kills came after the relay had finished: nothing tested"


async def _past(url: str, notification_id: int) -> bool:
    return await last_relayed(url) > notification_id
