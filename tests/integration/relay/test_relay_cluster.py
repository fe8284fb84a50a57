"""A 3-node cluster on loopback with R3 streams: the stream leader dies while the relay works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eventsourcing.persistence import StoredEvent

from domain.service import CaseService
from infra.nats.streams import EVENTS_STREAM, ensure_streams
from infra.settings import Settings
from tests.integration.relay.support import (
    assert_stream_equals_log,
    insert_cases,
    nats_client,
    running_relay,
    wait_for,
    wait_until_relayed,
)
from tests.nats_cluster import NatsCluster

pytestmark = pytest.mark.asyncio


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nodes = NatsCluster.start(tmp_path / "cluster")
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
async def test_killing_the_stream_leader_loses_and_repeats_nothing(
    service: CaseService,
    store_settings: Settings,
    cluster: NatsCluster,
    template: list[StoredEvent],
) -> None:
    await cluster.wait_for_meta_leader()
    admin = await nats_client(cluster.url)
    await ensure_streams(admin.jetstream(), replicas=3)
    assert (await admin.jetstream().stream_info(EVENTS_STREAM)).config.num_replicas == 3
    await admin.close()
    settings = store_settings.model_copy(
        update={"nats_url": cluster.url, "relay_poll_interval": 0.2, "relay_ack_timeout": 3.0}
    )
    insert_cases(service, template, 10_000)
    total = service.recorder.max_notification_id() or 0

    async with running_relay(service, settings) as relay:
        await wait_for(lambda: relay.stats.relayed >= 500, 30, "the relay to get going")
        leader = await cluster.stream_leader(EVENTS_STREAM)
        cluster.node(leader).kill()  # mid-relay: publishes in flight go unanswered
        before = relay.stats.relayed
        assert before < total - 500, "the leader must die while the relay still has work"
        await wait_for(lambda: relay.stats.relayed > before + 500, 60, "relaying after fail-over")
        assert await cluster.stream_leader(EVENTS_STREAM) != leader
        await wait_until_relayed(cluster.url, service, timeout=60)
    stream = await assert_stream_equals_log(cluster.url, service)
    assert len(stream) == total
