"""`whistleloop up --simulate` (what `make demo` runs): a fresh store gets the district's last days
first, then live simulated traffic flows through the gateway, so the dashboard's API shows history
and cases reported a moment ago within a minute of the start."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from domain.clock import CHINA_TZ
from infra.nats.server import free_port
from tests.e2e.test_up import start_up

WITHIN = 60.0


def test_up_simulate_shows_history_and_live_traffic_within_a_minute(tmp_path: Path) -> None:
    gateway_port = free_port()
    started = datetime.now(UTC)
    process, _port = start_up(
        tmp_path, "--simulate", "--rate", "8", "--backfill", "3", gateway_port=gateway_port
    )
    try:
        base = f"http://127.0.0.1:{gateway_port}"
        viewer = _viewer_token(tmp_path / "var" / "tokens.json")
        deadline = time.monotonic() + WITHIN
        history = live = False
        while time.monotonic() < deadline and not (history and live):
            time.sleep(1)
            with contextlib.suppress(httpx.HTTPError):
                history = bool(_cases(base, viewer, reported_to=_day(started - timedelta(days=1))))
                live = any(
                    datetime.fromisoformat(case["reported_at"]) >= started
                    for case in _cases(base, viewer)
                )
        assert history, "no backfilled case older than a day is listed"
        assert live, "no case reported since up started is listed"
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    assert "backfill:" in out
    simulate_log = (tmp_path / "var" / "logs" / "simulate.log").read_text()
    assert "live traffic to" in simulate_log


def _viewer_token(path: Path) -> str:
    deadline = time.monotonic() + WITHIN
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    token: str = json.loads(path.read_text())["tokens"]["viewer"]
    return token


def _cases(base: str, token: str, **filters: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{base}/api/v1/cases",
        params={"limit": 200, **filters},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _day(moment: datetime) -> str:
    return moment.astimezone(CHINA_TZ).date().isoformat()
