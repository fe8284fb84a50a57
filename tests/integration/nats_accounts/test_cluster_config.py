"""`nats-config --cluster`: three node configs that start a real 3-node JetStream cluster from the
wheel's nats-server, on which R3 streams serve every account's users, whichever node they reach.

One cluster for the module (starting three nodes and electing a meta leader costs seconds); each
test uses subjects and consumers of its own, so they do not depend on each other's order.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from infra.nats.accounts import (
    ClusterLayout,
    WrittenCluster,
    load_credentials,
    write_cluster_config,
)
from infra.nats.department_client import DepartmentFeed
from infra.nats.server import NatsServer, free_port, nats_server_binary
from infra.nats.streams import AUDIT_STREAM, DEPT_STREAM, EVENTS_STREAM, ensure_streams
from infra.settings import Settings
from projections.dept_feeds import ensure_department_consumers
from tests.integration.nats_accounts.conftest import TEST_ROUNDS
from tests.integration.nats_accounts.support import OWN

#: The async tests share the module's event loop, where the module-scoped admin client lives.
in_module_loop = pytest.mark.asyncio(loop_scope="module")

SIZE = 3


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> WrittenCluster:
    """The configs as `nats-config --cluster` writes them, on free ports (cheap hashes)."""
    workdir = tmp_path_factory.mktemp("nats-cluster")
    ports = [free_port() for _ in range(2 * SIZE)]
    layout = ClusterLayout(client_ports=ports[:SIZE], route_ports=ports[SIZE:])
    settings = Settings(var_dir=workdir / "var")
    return write_cluster_config(
        settings, workdir / "conf" / "accounts.conf", layout, rounds=TEST_ROUNDS
    )


@pytest.fixture(scope="module")
def running(written: WrittenCluster) -> Iterator[list[NatsServer]]:
    """Each node started from its generated file, as an operator runs `nats-server -c node-i.conf`."""
    try:
        yield [node.start() for node in written.nodes]
    finally:
        for node in written.nodes:
            node.kill()


async def _connect(url: str, user: str, password: str) -> Client:
    return await nats.connect(url, user=user, password=password, connect_timeout=3)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def admin(running: list[NatsServer], written: WrittenCluster) -> AsyncIterator[Client]:
    """The admin user on node 1, once the cluster has a meta leader, with the streams at R3."""
    credentials = load_credentials(written.credentials)
    client = await _connect(running[0].url, "admin", credentials.services["admin"])
    try:
        await _wait_for_meta_leader(client)
        await ensure_streams(client.jetstream(timeout=5), replicas=SIZE)
        yield client
    finally:
        await client.close()


async def _wait_for_meta_leader(client: Client, attempts: int = 100) -> None:
    """Cluster JetStream answers once the nodes have elected a meta leader (a few seconds)."""
    for _ in range(attempts):
        try:
            await client.jetstream(timeout=2).account_info()
            return
        except Exception:
            await asyncio.sleep(0.3)
    await client.jetstream(timeout=2).account_info()  # the last try raises its own error


WHISTLELOOP = Path(sys.executable).with_name("whistleloop")


def _cli_has_cluster() -> bool:
    """The `--cluster` option is wired in infra/cli.py by the lead (this part may not edit it)."""
    help_text = subprocess.run(
        [str(WHISTLELOOP), "nats-config", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    return "--cluster" in help_text


@pytest.mark.skipif(not _cli_has_cluster(), reason="infra/cli.py has no nats-config --cluster yet")
def test_the_command_writes_three_valid_nodes_and_prints_the_url(tmp_path: Path) -> None:
    """`whistleloop nats-config --cluster` as an operator runs it: node i on the base ports + i-1."""
    client, route = free_port(), free_port()
    while abs(route - client) < SIZE:  # the two ranges of three ports must not overlap
        route = free_port()
    env = {**os.environ, "WL_VAR_DIR": str(tmp_path / "var"), "WL_NATS_PORT": str(client)}
    output = tmp_path / "conf" / "accounts.conf"
    command = [str(WHISTLELOOP), "nats-config", "--cluster", "--route-port", str(route)]
    result = subprocess.run(
        [*command, "--output", str(output)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    urls = ",".join(f"nats://127.0.0.1:{client + i}" for i in range(SIZE))
    assert f"WL_NATS_URL={urls}" in result.stdout.replace("\n", "")
    for index in range(1, SIZE + 1):
        config = (output.parent / f"node-{index}.conf").read_text()
        assert f"listen: 127.0.0.1:{client + index - 1}\n" in config
        assert f"listen: 127.0.0.1:{route + index - 1}," in config
        check = [str(nats_server_binary()), "-t", "-c", str(output.parent / f"node-{index}.conf")]
        assert subprocess.run(check, capture_output=True, timeout=30).returncode == 0


def _option(config: str, pattern: str) -> str:
    found = re.search(pattern, config)
    assert found is not None, pattern
    return found.group(1)


def test_every_node_config_is_valid_and_private(written: WrittenCluster) -> None:
    for node in written.nodes:
        assert node.config_file is not None
        assert node.config_file.name == f"node-{written.nodes.index(node) + 1}.conf"
        assert node.config_file.stat().st_mode & 0o777 == 0o600
        result = subprocess.run(
            [str(nats_server_binary()), "-t", "-c", str(node.config_file)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_nodes_differ_in_ports_and_stores_and_share_the_accounts(written: WrittenCluster) -> None:
    configs = [node.config_path.read_text() for node in written.nodes]
    fragment = written.fragment.read_text()
    listens = [_option(c, r"\nlisten: (127\.0\.0\.1:\d+)") for c in configs]
    stores = [_option(c, r"store_dir: (\"[^\"]+\")") for c in configs]
    names = [_option(c, r"server_name: (\S+)") for c in configs]
    routes = [
        _option(c, r"cluster \{ name: whistleloop, listen: (127\.0\.0\.1:\d+),") for c in configs
    ]
    for values in (listens, stores, names, routes):
        assert len(set(values)) == SIZE, values
    for config, own_route in zip(configs, routes, strict=True):
        assert config.endswith(fragment), "a node's accounts differ from the shared fragment"
        targets = re.findall(r"nats-route://(127\.0\.0\.1:\d+)", config)
        assert sorted(targets) == sorted(r for r in routes if r != own_route)


@in_module_loop
async def test_streams_are_replicated_on_all_three_nodes(admin: Client) -> None:
    js = admin.jetstream(timeout=5)
    for stream in (EVENTS_STREAM, DEPT_STREAM, AUDIT_STREAM):
        info = await js.stream_info(stream)
        assert info.config.num_replicas == SIZE
        assert info.cluster is not None
        assert info.cluster.leader is not None
        assert len(info.cluster.replicas or []) == SIZE - 1


@in_module_loop
async def test_services_and_a_department_use_the_r3_streams_through_different_nodes(
    admin: Client, running: list[NatsServer], written: WrittenCluster
) -> None:
    """The relay publishes on node 1, the projector consumes and re-publishes on node 2, the
    department reads its feed on node 3 through the DEPTS account's imports."""
    credentials = load_credentials(written.credentials)
    relay = await _connect(running[0].url, "relay", credentials.services["relay"])
    projector = await _connect(running[1].url, "projector", credentials.services["projector"])
    try:
        acks = [
            await relay.jetstream(timeout=5).publish(f"wl.ev.jianwai.r3case.Event{i}", b"{}")
            for i in range(3)
        ]
        pjs = projector.jetstream(timeout=5)
        sub = await pjs.pull_subscribe("wl.ev.jianwai.r3case.>", durable="r3_probe")
        pulled = await sub.fetch(3, timeout=5)
        await ensure_department_consumers(pjs, [OWN])  # as the projector does at start
        for msg in pulled:
            await pjs.publish(msg.subject.replace("wl.ev.jianwai", f"wl.dept.{OWN}"), msg.data)
            await msg.ack()
    finally:
        await relay.close()
        await projector.close()

    assert [a.stream for a in acks] == [EVENTS_STREAM] * 3
    assert [m.metadata.sequence.stream for m in pulled] == [a.seq for a in acks]
    feed = await DepartmentFeed.open(running[2].url, OWN, credentials.departments[OWN])
    try:
        got = await feed.fetch(batch=10, timeout=5)
        await feed.ack(got)
    finally:
        await feed.close()
    assert [m.subject for m in got] == [f"wl.dept.{OWN}.r3case.Event{i}" for i in range(3)]
