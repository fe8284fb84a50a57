"""`whistleloop up` as an operator runs it: the whole system as real processes, stopped cleanly."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from infra.nats.server import free_port
from infra.settings import Settings
from projections import registry
from projections.cli import projections_status

WHISTLELOOP = Path(sys.executable).with_name("whistleloop")


def start_up(
    tmp_path: Path, *args: str, gateway_port: int = 0, dashboard_port: int = 0
) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    env = {
        **os.environ,
        "WL_GATEWAY_PORT": str(gateway_port or free_port()),
        "WL_DASHBOARD_PORT": str(dashboard_port or free_port()),
        "WL_VAR_DIR": str(tmp_path / "var"),
        "WL_NATS_PORT": str(port),
        "WL_NATS_URL": "",
        "WL_DATABASE_URL": "",
        "COLUMNS": "200",
    }
    process = subprocess.Popen(
        [str(WHISTLELOOP), "--log-level", "info", "up", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, port


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def child_pids(stderr: str, name: str) -> list[int]:
    """The supervisor logs one JSON line per child start, with its pid."""
    pids = []
    for line in stderr.splitlines():
        if line.startswith("{") and '"child"' in line:
            record = json.loads(line)
            if record.get("child") == name and "pid" in record:
                pids.append(int(record["pid"]))
    return pids


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_up_with_demo_traffic_shows_events_and_stops_everything(tmp_path: Path) -> None:
    process, port = start_up(tmp_path, "--demo", "--duration", "25")
    out, err = process.communicate(timeout=90)
    assert process.returncode == 0, err[-2000:]
    assert "whistleloop is up" in out
    for label in ("上报", "受理", "吹哨", "报到"):
        assert label in out, out[-3000:]
    assert "stopped: all processes ended" in out
    assert not port_open(port)
    for name in ("nats", "relay", "projector", "sla", "gateway", "dashboard"):
        pids = child_pids(err, name)
        assert len(pids) == 1, f"{name} started {len(pids)} times (crashed?): {err[-2000:]}"
        assert all(gone(pid) for pid in pids)
    progress = {r["name"]: r for r in projections_status(Settings(var_dir=tmp_path / "var"))}
    assert set(progress) == set(registry.registered(Settings(var_dir=tmp_path / "var")))
    for name, row in progress.items():
        assert row["state"] == "running", row
        assert row["last_notification_id"] > 1, f"{name} applied nothing: {row}"


def test_sigterm_stops_everything_and_a_killed_child_is_restarted(tmp_path: Path) -> None:
    gateway_port = free_port()
    process, port = start_up(tmp_path, "--demo", gateway_port=gateway_port)
    try:
        _gateway_serves_the_demo(process, gateway_port)
        tokens_file = tmp_path / "var" / "tokens.json"
        assert tokens_file.stat().st_mode & 0o777 == 0o600  # bearer tokens: the owner's only
        written = json.loads(tokens_file.read_text())
        assert written["gateway"] == f"http://127.0.0.1:{gateway_port}"
        assert set(written["tokens"]) >= {"viewer", "command_centre", "street jianwai"}
        deadline = time.monotonic() + 30
        relay_log = tmp_path / "var" / "logs" / "relay.log"
        while not relay_log.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(4)
        pids = [int(p) for p in _pids_of(tmp_path, "relay")]
        assert len(pids) == 1
        os.kill(pids[0], signal.SIGKILL)
        time.sleep(4)  # back-off is 1 s for the first restart
        assert len(_pids_of(tmp_path, "relay")) == 1
        assert _pids_of(tmp_path, "relay") != [str(pids[0])]
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    assert "stopped: all processes ended" in out
    assert not port_open(port)
    assert _pids_of(tmp_path, "relay") == []


def _gateway_serves_the_demo(process: subprocess.Popen[str], port: int) -> None:
    """The gateway comes up ready, and the viewer token from the banner lists the demo cases."""
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
        time.sleep(0.3)
    else:
        raise AssertionError("the gateway never became ready")
    assert process.stdout is not None
    token = ""
    while not token:
        line = process.stdout.readline()
        assert line, "the banner printed no viewer token"
        if line.strip().startswith("token viewer"):
            token = line.rsplit(":", 1)[1].strip()
    page = httpx.get(
        f"{base}/api/v1/cases", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert page.status_code == 200, page.text
    assert "items" in page.json()


def _pids_of(tmp_path: Path, name: str) -> list[str]:
    """Live processes whose command line is `whistleloop <name>` with this test's var dir."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes()
            status = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if status == "Z":
            continue
        commands = [b for a, b in itertools.pairwise(argv) if a.endswith(b"whistleloop")]
        if name.encode() in commands and str(tmp_path).encode() in environ:
            found.append(entry.name)
    return found
