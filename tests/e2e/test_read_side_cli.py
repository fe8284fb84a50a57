"""The read side's commands as an operator runs them: relay, project, rebuild, audit, SLA clock.

Real processes on a real nats-server and a SQLite store: a demo case is relayed and projected, every
projection is rebuilt from the stream and from the store, a tree head is signed and the trail
verifies; then one stored event is deleted behind the system's back and `audit verify` names it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from infra.nats.server import NatsServer, free_port
from infra.settings import Settings
from projections.cli import projections_status
from projections.registry import registered
from tests.e2e.test_cli import WHISTLELOOP, run


@pytest.fixture
def env(tmp_path: Path, nats_server: NatsServer) -> dict[str, str]:
    return {
        "WL_VAR_DIR": str(tmp_path / "var"),
        "WL_DATABASE_URL": "",
        "WL_VIEWS_DATABASE_URL": "",
        "WL_NATS_URL": nats_server.url,
    }


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(WHISTLELOOP), *args],
        env={**os.environ, "COLUMNS": "200", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-3000:]
    return out, err


def wait_projected(settings: Settings, last: int, timeout: float = 60) -> None:
    """Until every table projection has applied up to notification `last`."""
    names = set(registered(settings))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = {r["name"]: r for r in projections_status(settings)}
        if set(rows) == names and all(r["last_notification_id"] >= last for r in rows.values()):
            return
        time.sleep(0.3)
    raise AssertionError(f"projections did not reach {last}: {projections_status(settings)}")


def last_notification(env: dict[str, str]) -> int:
    done = run(env, "store", "stats", "--json")
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["last_notification_id"])


def test_project_rebuild_sign_verify_and_tamper(env: dict[str, str], tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    assert run(env, "demo").returncode == 0
    last = last_notification(env)
    relay, projector = start(env, "relay"), start(env, "project")
    try:
        wait_projected(settings, last)
    finally:
        stop(projector)

    refused = run(env, "projections", "rebuild", "dept_feeds")
    assert refused.returncode == 1
    assert "WL_DEPT" in refused.stdout
    rebuilt = run(env, "projections", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    for name in ("case_board", "dept_performance", "linkage", "deadlines", "audit"):
        assert name in rebuilt.stdout
    from_store = run(env, "projections", "rebuild", "case_board", "--from-store")
    assert from_store.returncode == 0, from_store.stdout + from_store.stderr
    assert "event store" in from_store.stdout
    status = {r["name"]: r for r in projections_status(settings)}
    assert status["case_board"]["last_notification_id"] == last
    assert status["case_board"]["last_stream_seq"] == status["audit"]["last_stream_seq"]

    signed = run(env, "audit", "sign")
    assert signed.returncode == 0, signed.stdout + signed.stderr
    assert json.loads(signed.stdout)["tree_size"] == last
    clean = run(env, "audit", "verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    stop(relay)
    with sqlite3.connect(tmp_path / "var" / "events.db") as db:
        (table,) = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%events'"
        ).fetchone()
        (removed,) = db.execute(f"SELECT id FROM {table} WHERE originator_version = 3").fetchone()
        db.execute(f"DELETE FROM {table} WHERE id = ?", (removed,))
    tampered = run(env, "audit", "verify")
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert "missing from store" in tampered.stdout
    assert f"│ {removed} " in tampered.stdout  # the deleted event, by its notification id


def test_sla_clock_runs_until_sigterm(env: dict[str, str]) -> None:
    assert run(env, "store", "init").returncode == 0
    clock = start(env, "--log-level", "info", "sla", "--every", "0.2")
    time.sleep(3)
    _, err = stop(clock)
    assert "SLA clock stopped" in err
    assert "Traceback" not in err


def test_one_shot_commands_say_when_nats_is_unreachable(tmp_path: Path) -> None:
    """An operator's command gives up within seconds with one line, unlike the services."""
    unreachable = {
        "WL_VAR_DIR": str(tmp_path / "var"),
        "WL_NATS_URL": f"nats://127.0.0.1:{free_port()}",
    }
    started = time.monotonic()
    rebuilt = run(unreachable, "projections", "rebuild", "case_board")
    assert rebuilt.returncode == 2
    assert "no NATS server answers" in rebuilt.stdout
    signed = run(unreachable, "audit", "sign")
    assert signed.returncode == 2
    assert "audit sign failed" in signed.stdout
    assert time.monotonic() - started < 60
