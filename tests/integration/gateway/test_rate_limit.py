"""Writes per caller are limited: 429 with Retry-After beyond the burst, nothing stored, no
idempotency key claimed, other callers and reads untouched; Open311's api_key is the caller there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from domain.clock import ManualClock
from infra.nats.server import NatsServer
from tests.integration.gateway.conftest import Gateway, gateway_settings, running_gateway
from tests.integration.gateway.rest import CASES, REPORT
from tests.integration.gateway.test_errors_and_idempotency import assert_problem, last_event
from tests.integration.gateway.test_open311 import BASE, FORMATS, form

pytestmark = pytest.mark.asyncio

BURST = 3


@pytest_asyncio.fixture
async def limited(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock
) -> AsyncIterator[Gateway]:
    """A gateway whose callers may write 3 times at once, then once a second."""
    settings = gateway_settings(
        tmp_path, nats_server, gateway_write_rate=1.0, gateway_write_burst=BURST
    )
    async with running_gateway(settings, clock) as gw:
        yield gw


async def test_a_caller_beyond_its_burst_is_refused_and_nothing_is_stored(limited: Gateway) -> None:
    gw, c = limited, limited.client
    street = gw.auth("street", street="jianwai")
    for _ in range(BURST):
        assert (await c.post(CASES, json=REPORT, headers=street)).status_code == 201
    before = last_event(gw)

    key = {"Idempotency-Key": "after-the-limit"}
    refused = await c.post(CASES, json=REPORT, headers=street | key)
    assert_problem(refused, 429, "rate_limited")
    assert refused.headers["Retry-After"] == "1"
    again = gw.auth("street", street="jianwai")  # a fresh token of the same principal
    assert_problem(await c.post(CASES, json=REPORT, headers=again), 429, "rate_limited")
    assert last_event(gw) == before, "a refused write stored something"

    other = gw.auth("street", street="hujialou")
    elsewhere = {k: v for k, v in REPORT.items() if k != "grid"}
    other_report = elsewhere | {"street": "hujialou", "community": "hujialou_c01"}
    assert (await c.post(CASES, json=other_report, headers=other)).status_code == 201
    for _ in range(10):  # reads are not limited
        assert (await c.get(CASES, headers=street)).status_code == 200

    await asyncio.sleep(1.1)
    retried = await c.post(CASES, json=REPORT, headers=street | key)
    assert retried.status_code == 201, "the 429 claimed the Idempotency-Key"
    assert "idempotent-replayed" not in retried.headers


@pytest.mark.parametrize("fmt", FORMATS)
async def test_open311_callers_are_limited_by_their_api_key(limited: Gateway, fmt: str) -> None:
    gw, c = limited, limited.client
    resident = form(gw, api_key=gw.token("resident", subject=f"r-limit-{fmt}"))
    url = f"{BASE}/requests.{fmt}"
    for _ in range(BURST):
        assert (await c.post(url, data=resident)).status_code == 201
    refused = await c.post(url, data=resident)
    assert_problem(refused, 429, "rate_limited")  # a middleware refusal, as 413 is
    assert refused.headers["Retry-After"] == "1"
    other = form(gw, api_key=gw.token("resident", subject=f"r-other-{fmt}"))
    assert (await c.post(url, data=other)).status_code == 201
