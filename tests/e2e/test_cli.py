"""The `whistleloop` command as an operator runs it: a real process on a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.settings import Settings

WHISTLELOOP = Path(sys.executable).with_name("whistleloop")


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WHISTLELOOP), *args],
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def store_env(settings: Settings) -> dict[str, str]:
    return {
        "WL_VAR_DIR": str(settings.var_dir),
        "WL_DATABASE_URL": settings.database_url,
        "WL_DATABASE_SCHEMA": settings.database_schema,
    }


@pytest.fixture
def env(store_settings: Settings) -> dict[str, str]:
    """The environment that points the CLI at the test's own store (SQLite file or PG schema)."""
    return store_env(store_settings)


def stats(env: dict[str, str]) -> dict[str, object]:
    done = run(env, "store", "stats", "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_help_explains_every_command() -> None:
    done = run({}, "--help")
    assert done.returncode == 0
    for command in ("version", "reference", "store", "demo", "bench"):
        assert command in done.stdout
    for sub in (["store", "--help"], ["store", "init", "--help"], ["demo", "--help"]):
        assert run({}, *sub).returncode == 0


def test_version_matches_the_package() -> None:
    from importlib.metadata import version

    assert run({}, "version").stdout.strip() == f"whistleloop {version('whistleloop')}"


def test_reference_prints_the_shipped_duty_list() -> None:
    done = run({}, "reference", "duty-items")
    assert done.returncode == 0
    assert "CG-001" in done.stdout
    assert "协助查处辖区内违法建设" in done.stdout
    assert run({}, "reference", "nonsense").returncode == 2


def test_store_init_is_idempotent_and_stats_count_it(env: dict[str, str]) -> None:
    for _ in range(2):
        done = run(env, "store", "init")
        assert done.returncode == 0, done.stderr
        assert "duty list version 1" in done.stdout
    counted = stats(env)
    assert counted["cases"] == 0
    assert counted["by_topic"] == {"whistleloop.duty_list.Published": 1}


def test_demo_runs_a_case_through_the_whole_loop(env: dict[str, str]) -> None:
    done = run(env, "demo")
    assert done.returncode == 0, done.stderr
    for label in ("上报", "受理", "吹哨", "报到", "返工", "核查结案", "评价"):
        assert label in done.stdout
    assert "status closed" in done.stdout
    counted = stats(env)
    assert counted["cases"] == 1
    assert counted["events"] == 12  # the duty list + 11 case events


def test_unreachable_store_is_one_clear_line(tmp_path: Path) -> None:
    env = {"WL_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    done = run(env, "store", "stats")
    assert done.returncode == 1
    assert "event store unavailable" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_projection_operator_commands_explain_themselves(tmp_path: Path) -> None:
    env = {"WL_VAR_DIR": str(tmp_path / "var")}
    status = run(env, "projections", "status")
    assert status.returncode == 0, status.stderr
    assert "no projection has run yet" in status.stdout
    refused = run(env, "projections", "skip", "dept_feeds", "--seq", "7")
    assert refused.returncode == 1
    assert "not halted" in refused.stdout
    assert "Traceback" not in refused.stdout + refused.stderr


def test_simulate_backfills_history_into_the_store_and_refuses_idle_options(
    env: dict[str, str],
) -> None:
    before = stats(env)
    done = run(env, "simulate", "--seed", "5", "--backfill", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "backfill:" in done.stdout
    after = stats(env)
    assert after["events"] > before["events"]  # type: ignore[operator]

    idle = run(env, "simulate")
    assert idle.returncode == 1
    assert "nothing to do" in idle.stdout
    nowhere = run(env, "simulate", "--rate", "5", "--url", "http://127.0.0.1:9")
    assert nowhere.returncode == 1
    assert "no gateway at http://127.0.0.1:9" in nowhere.stdout
