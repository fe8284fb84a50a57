"""The gateway's bench section, run tiny: it must produce well-formed results and a report.

Real child processes (`whistleloop gateway`, `relay`, `project`), a real nats-server and SQLite
stores, as `whistleloop bench --only gateway` runs them; no figure is asserted, only that every
measure is there, positive, and tied to the reference and ceiling it claims.
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway.benchmark import (
    P50_CEILING_MS,
    P99_CEILING_MS,
    REFERENCE,
    TARGET_RATIO,
    gateway_section,
)
from infra.benchmarks.report import write_report


def test_tiny_run_gives_every_measure_and_a_report(tmp_path: Path) -> None:
    section = gateway_section(42, "", latency_seconds=1.0, rate=20.0)

    assert {r.backend for r in section.results} == {"SQLite"}
    assert all(r.reference == REFERENCE and r.per_second > 0 for r in section.results)
    reference, http, idempotent = section.results
    assert reference.measure == REFERENCE
    assert reference.ratio == 1.0
    assert http.target == TARGET_RATIO
    assert http.reference_per_second == reference.per_second
    assert "Idempotency-Key" in idempotent.measure
    assert idempotent.target is None

    limits = {limit.measure: limit for limit in section.limits}
    p50, p99 = limits["command → cgzf frame, p50"], limits["command → cgzf frame, p99"]
    assert (p50.ceiling, p99.ceiling) == (P50_CEILING_MS, P99_CEILING_MS)
    # 20 commands: at least one case reaches the whistle, and every frame sent is matched.
    assert p50.count == p99.count > 0
    assert 0 < p50.value <= p99.value
    assert "never arrived" not in section.notes
    assert limits["POST round trip (reference), p99"].count == 20
    rss = [limit for limit in section.limits if limit.measure.startswith("gateway peak RSS")]
    assert len(rss) == 2
    assert all(limit.unit == "MB" and limit.value > 10 for limit in rss)

    output = tmp_path / "BENCHMARKS.md"
    write_report([section], "", output)
    recorded = json.loads(output.with_suffix(".json").read_text())
    assert recorded["sections"][0]["title"] == section.title
    assert "command → cgzf frame, p99" in output.read_text()
