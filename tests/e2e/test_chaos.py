"""The short chaos run of `make test`: six SIGKILLs (relay, projector, SLA clock, gateway,
nats-server, one more) under load, then every promise of docs/RELIABILITY.md checked."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from gateway.chaos import TARGETS, print_report, run_chaos


def test_six_kills_under_load_lose_and_repeat_nothing(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200)
    report = run_chaos(seed=7, kills=6, seconds=40, rate=15, work=tmp_path, console=console)
    print_report(report, console)
    assert {kill.target for kill in report.kills} == set(TARGETS)
    assert report.ok, out.getvalue()[-4000:]
    assert report.acked > 100, "the load must keep going through the kills"
    assert report.events >= report.acked
