"""`whistleloop simulate --rate N`: simulated users drive the real gateway over HTTP (uvicorn on a port),
REST and Open311, with tokens of each step's actor; the cases move through the closed loop."""

from __future__ import annotations

import asyncio
import io
import re
from collections import Counter
from uuid import UUID

import pytest
from rich.console import Console

from infra.live_traffic import run_simulate
from tests.integration.builders import notifications
from tests.integration.gateway.conftest import Served

pytestmark = pytest.mark.asyncio

SUMMARY = re.compile(
    r"live: sent (\d+) in \d+ s .*?(\d+) reports via Open311\); refused .*; errors 0"
)


async def test_live_traffic_runs_the_loop_over_rest_and_open311(served: Served) -> None:
    gw = served.gateway
    out = io.StringIO()
    status = await asyncio.to_thread(
        run_simulate,
        gw.settings,
        seed=3,
        backfill_days=0,
        rate=20,
        duration=5,
        open311_share=0.3,
        token_for=lambda role, scope: gw.token(role, **scope),
        url=served.base_url,
        console=Console(file=out, width=400),
    )
    summary = out.getvalue()
    assert status == 0, summary  # no 5xx, no request without an answer
    match = SUMMARY.search(summary)
    assert match is not None, summary
    sent, via_open311 = int(match[1]), int(match[2])
    assert sent >= 60, summary
    assert via_open311 >= 1, summary

    cases = [n for n in notifications(gw.service) if n.topic.startswith("whistleloop.case.")]
    kinds = Counter(n.topic.rsplit(".", 1)[1] for n in cases)
    for kind in ("CaseReported", "CaseAccepted", "Whistled", "ReportedIn", "HandlingReported"):
        assert kinds[kind] > 0, (kind, kinds)
    sources = Counter(
        gw.service.case(UUID(str(n.originator_id)))["source"]
        for n in cases
        if n.originator_version == 1
    )
    assert sources["open311"] == via_open311, (sources, summary)
    assert len(sources) >= 2, sources  # and REST reports of other sources
    await gw.settle()  # the relay and projectors took it all in


async def test_refuses_options_that_do_nothing(served: Served) -> None:
    out = io.StringIO()
    status = run_simulate(
        served.gateway.settings,
        seed=1,
        backfill_days=0,
        rate=0,
        duration=0,
        open311_share=0.2,
        token_for=lambda role, scope: "",
        console=Console(file=out, width=200),
    )
    assert status == 1
    assert "nothing to do" in out.getvalue()
