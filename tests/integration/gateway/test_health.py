"""Liveness, readiness and metrics, against a real store, nats-server and running projectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from domain.actors import Actor
from domain.clock import ManualClock
from gateway import create_app
from infra.nats.server import NatsServer
from tests.integration.gateway.conftest import Gateway, gateway_settings
from tests.integration.projections.support import eventually

pytestmark = pytest.mark.asyncio

GARBAGE_SUBJECT = "wl.ev.nowhere.not-a-case.Bogus"


def _report(gw: Gateway) -> None:
    gw.service.report(
        Actor.of("street", "jianwai"),
        source="street_patrol",
        street="jianwai",
        title="井盖缺失",
        description="路口井盖缺失",
    )


async def _readiness(gw: Gateway) -> tuple[int, dict[str, Any]]:
    response = await gw.client.get("/readyz")
    return response.status_code, response.json()


async def test_ready_once_everything_answers_and_projections_report_their_lag(gw: Gateway) -> None:
    assert (await gw.client.get("/healthz")).json() == {"status": "ok"}
    _report(gw)
    await gw.settle()
    status, body = await _readiness(gw)
    assert status == 200, body
    last = gw.service.recorder.max_notification_id()
    assert body["last_notification_id"] == last
    assert body["store"] == {"ok": True, "detail": ""}
    projections = {p["name"]: p for p in body["projections"]}
    assert {"case_board", "audit", "dept_feeds", "deadlines"} <= projections.keys()
    assert all(p["lag_events"] == 0 and p["state"] == "running" for p in projections.values())
    assert body["relayed_notification_id"] == last  # the projections applied it: it was relayed


async def test_a_halted_projection_makes_the_gateway_not_ready(gw: Gateway) -> None:
    _report(gw)
    await gw.settle()  # the relay has made the streams
    await gw.resources.js.publish(GARBAGE_SUBJECT, b"\x00 not an event", timeout=10)

    async def halted() -> bool:
        status, body = await _readiness(gw)
        return status == 503 and any(p["state"] == "halted" for p in body["projections"])

    for _ in range(300):
        if await halted():
            break
        await gw.client.get("/healthz")
    else:
        raise AssertionError("readiness never reported the halted projection")
    _, body = await _readiness(gw)
    halted_ones = [p for p in body["projections"] if p["state"] == "halted"]
    assert all(p["error"] for p in halted_ones)
    assert (await gw.client.get("/healthz")).status_code == 200  # alive, just not ready


async def test_not_ready_while_nats_is_down_and_ready_again_after(
    gw: Gateway, nats_server: NatsServer
) -> None:
    nats_server.stop()
    await eventually(lambda: not gw.resources.nc.is_connected, "the gateway to notice")
    status, body = await _readiness(gw)
    assert status == 503
    assert body["nats"]["ok"] is False
    nats_server.start()
    await eventually(lambda: gw.resources.nc.is_connected, "the gateway to reconnect", 30)
    status, body = await _readiness(gw)
    assert status == 200, body


async def test_the_gateway_starts_without_nats_and_is_ready_once_nats_answers(
    tmp_path: Path, clock: ManualClock
) -> None:
    server = NatsServer(tmp_path / "nats")  # not started yet
    app = create_app(gateway_settings(tmp_path, server), clock=clock)
    async with LifespanManager(app, startup_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            assert (await client.get("/healthz")).status_code == 200
            waiting = await client.get("/readyz")
            assert waiting.status_code == 503
            assert waiting.json()["nats"]["ok"] is False
            server.start()
            try:
                resources = app.state.resources
                await eventually(lambda: resources.nc.is_connected, "NATS to be reached", 30)
                ready = await client.get("/readyz")
                assert ready.json()["nats"]["ok"] is True, ready.json()
            finally:
                server.kill()


async def test_metrics_expose_lag_per_projection_and_the_relay(gw: Gateway) -> None:
    _report(gw)
    await gw.settle()
    text = (await gw.client.get("/metrics")).text
    last = gw.service.recorder.max_notification_id() or 0
    assert f"whistleloop_store_last_notification_id {float(last)}" in text
    assert 'whistleloop_projection_lag_events{projection="case_board"} 0.0' in text
    assert 'whistleloop_projection_halted{projection="audit"} 0.0' in text
    assert "whistleloop_relay_lag_events 0.0" in text
    assert "whistleloop_ws_clients" in text


@pytest.fixture
def gw(gateway: Gateway) -> Gateway:
    return gateway
