"""R3 streams asked for while a cluster is still short of peers are created once the peers arrive."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from infra.nats.connection import connect
from infra.nats.streams import EVENTS_STREAM, ensure_streams
from tests.nats_cluster import NatsCluster

pytestmark = pytest.mark.asyncio


async def test_r3_streams_wait_for_the_third_peer(tmp_path: Path) -> None:
    cluster = NatsCluster.start(tmp_path / "cluster")
    try:
        late = cluster.nodes[2]
        late.kill()  # two of three: a meta leader, but no third peer for an R3 stream
        await NatsCluster(cluster.nodes[:2]).wait_for_meta_leader()
        nc = await connect(cluster.nodes[0].url, name="test-client")
        try:
            creating = asyncio.create_task(ensure_streams(nc.jetstream(), replicas=3))
            await asyncio.sleep(2.0)
            assert not creating.done(), "an R3 stream cannot be placed on two peers"
            late.start()
            await asyncio.wait_for(creating, 30)
            info = await nc.jetstream().stream_info(EVENTS_STREAM)
            assert info.config.num_replicas == 3
        finally:
            await nc.close()
    finally:
        cluster.stop()


async def test_placement_gives_up_after_its_timeout(tmp_path: Path) -> None:
    cluster = NatsCluster.start(tmp_path / "cluster")
    try:
        cluster.nodes[2].kill()
        await NatsCluster(cluster.nodes[:2]).wait_for_meta_leader()
        nc = await connect(cluster.nodes[0].url, name="test-client")
        try:
            with pytest.raises(Exception, match="no suitable peers"):
                await ensure_streams(nc.jetstream(), replicas=3, placement_timeout=1.0)
        finally:
            await nc.close()
    finally:
        cluster.stop()
