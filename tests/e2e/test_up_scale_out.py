"""`whistleloop up` scaled out: the event store and the read models on PostgreSQL, NATS a 3-node
JetStream cluster on loopback with R3 streams. A simulated district's history is backfilled and
live simulated traffic flows through the gateway; the dashboard's API, a department's WebSocket feed
and the streams' replication are checked; SIGTERM stops every child and leaves the
external cluster running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy
import websockets
from sqlalchemy import text

from gateway.auth import Role, issue_token
from infra.nats.connection import connect
from infra.nats.server import free_port
from infra.nats.streams import AUDIT_STREAM, DEPT_STREAM, EVENTS_STREAM
from infra.settings import DEFAULT_JWT_SECRET, Settings
from tests.e2e.test_up import WHISTLELOOP, child_pids, gone, port_open
from tests.nats_cluster import NatsCluster
from tests.stores import PG_URL, pg_schema_settings

pytestmark = pytest.mark.postgres

#: `up --simulate` runs in dev mode, where the gateway accepts the default secret: tokens signed with it
#: here are the same as the banner's.
DEV = Settings(jwt_secret=DEFAULT_JWT_SECRET)
#: How long the checks below wait for something that happens within seconds on a quiet machine:
#: bounds that end a broken run, not timings under test.
PATIENCE = 45.0


@pytest.fixture
def store_schema(pg_engine: sqlalchemy.Engine) -> Iterator[str]:
    """A fresh schema for the event store, dropped afterwards."""
    for settings in pg_schema_settings(pg_engine):
        yield settings.database_schema


@pytest.fixture
def views_url(pg_engine: sqlalchemy.Engine) -> Iterator[str]:
    """A fresh schema for the read models, reached through the connection's search_path."""
    schema = f"wl_views_{uuid.uuid4().hex[:12]}"
    with pg_engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with pg_engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nodes = NatsCluster.start(tmp_path / "nats")
    try:
        asyncio.run(nodes.wait_for_meta_leader())
        yield nodes
    finally:
        nodes.stop()


@dataclass
class Up:
    process: subprocess.Popen[str]
    gateway: str
    dashboard_port: int

    def get(self, path: str, token: str = "") -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(f"{self.gateway}{path}", headers=headers, timeout=5)


def start_up(tmp_path: Path, store_schema: str, views_url: str, cluster: NatsCluster) -> Up:
    gateway_port, dashboard_port = free_port(), free_port()
    env = {
        **os.environ,
        "WL_DATABASE_URL": PG_URL,
        "WL_DATABASE_SCHEMA": store_schema,
        "WL_VIEWS_DATABASE_URL": views_url,
        "WL_NATS_URL": cluster.url,
        "WL_NATS_REPLICAS": "3",
        "WL_GATEWAY_PORT": str(gateway_port),
        "WL_DASHBOARD_PORT": str(dashboard_port),
        "WL_VAR_DIR": str(tmp_path / "var"),
        "COLUMNS": "200",
    }
    process = subprocess.Popen(
        [
            str(WHISTLELOOP),
            "--log-level",
            "info",
            "up",
            "--simulate",
            "--rate",
            "8",
            "--backfill",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Up(process, f"http://127.0.0.1:{gateway_port}", dashboard_port)


def eventually(check: str, probe: Callable[[], object]) -> None:
    """Calls `probe` until it returns something true; fails naming `check` after PATIENCE."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if probe():
                return
        time.sleep(0.5)
    raise AssertionError(f"never happened: {check}")


def cases_in_overview(up: Up, token: str) -> int:
    response = up.get("/api/v1/views/overview", token)
    assert response.status_code == 200, response.text
    return sum(response.json()["statuses"].values())


async def first_cgzf_frames(up: Up, count: int) -> list[dict[str, object]]:
    """cgzf's feed from the start of WL_DEPT (`since=0`) until `count` event frames arrived."""
    token = issue_token(DEV, Role.DEPARTMENT, dept="cgzf", ttl=600)
    url = up.gateway.replace("http://", "ws://") + "/ws/departments/cgzf?since=0"
    frames: list[dict[str, object]] = []
    async with (
        asyncio.timeout(PATIENCE),
        websockets.connect(url, subprotocols=["bearer", token]) as ws,  # type: ignore[list-item]
    ):
        assert ws.subprotocol == "bearer"
        while len(frames) < count:
            frame = json.loads(await ws.recv())
            if frame["type"] == "event":
                frames.append(frame)
    return frames


async def stream_replicas(url: str) -> dict[str, int | None]:
    nc = await connect(url, name="scale-out-probe")
    try:
        js = nc.jetstream(timeout=5)
        streams = (EVENTS_STREAM, DEPT_STREAM, AUDIT_STREAM)
        return {name: (await js.stream_info(name)).config.num_replicas for name in streams}
    finally:
        await nc.close()


def test_up_on_postgresql_and_a_nats_cluster_serves_the_dashboard_and_feeds(
    tmp_path: Path, store_schema: str, views_url: str, cluster: NatsCluster
) -> None:
    up = start_up(tmp_path, store_schema, views_url, cluster)
    viewer = issue_token(DEV, Role.VIEWER, ttl=600)
    try:
        eventually("/readyz 200", lambda: up.get("/readyz").status_code == 200)
        eventually("the overview shows the history", lambda: cases_in_overview(up, viewer) >= 20)
        history = cases_in_overview(up, viewer)
        eventually("live cases arrive", lambda: cases_in_overview(up, viewer) > history)
        frames = asyncio.run(first_cgzf_frames(up, 3))
        replicas = asyncio.run(stream_replicas(cluster.url))
        eventually(
            "the dashboard answers",
            lambda: httpx.get(f"http://127.0.0.1:{up.dashboard_port}/_stcore/health").is_success,
        )
    finally:
        up.process.send_signal(signal.SIGTERM)
        out, err = up.process.communicate(timeout=60)

    assert up.process.returncode == 0, err[-2000:]
    assert "whistleloop is up" in out
    assert "stopped: all processes ended" in out
    subjects = [str(frame["subject"]) for frame in frames]
    assert all(s.startswith("wl.dept.cgzf.") for s in subjects), subjects
    assert subjects[0].endswith(".CaseReported"), (
        "a joining department gets the case from its start"
    )
    seqs = [int(str(frame["seq"])) for frame in frames]
    assert seqs == sorted(seqs)
    assert replicas == {EVENTS_STREAM: 3, DEPT_STREAM: 3, AUDIT_STREAM: 3}
    assert child_pids(err, "nats") == [], "up started its own NATS beside WL_NATS_URL"
    assert "backfill:" in out
    for name in ("relay", "projector", "sla", "gateway", "dashboard", "simulate"):
        pids = child_pids(err, name)
        assert len(pids) == 1, f"{name} started {len(pids)} times: {err[-2000:]}"
        assert all(gone(pid) for pid in pids), f"{name} outlived SIGTERM"
    assert not port_open(int(up.gateway.rsplit(":", 1)[1]))
    assert all(node.process is not None and node.process.poll() is None for node in cluster.nodes)
