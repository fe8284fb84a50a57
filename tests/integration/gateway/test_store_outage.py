"""PostgreSQL drops the gateway's connections (a restart, a failover): the command in flight is a
503 `store_unavailable` with Retry-After, nothing of it is stored, and the same request resent with
its Idempotency-Key lands once. (It was a 500 `internal_error`, found by the chaos run.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from domain.clock import ManualClock
from gateway.chaos import Sessions
from infra.nats.server import NatsServer
from infra.settings import Settings
from infra.store import open_service
from tests.integration.gateway.conftest import Gateway, gateway_settings, running_gateway
from tests.integration.gateway.rest import report
from tests.stores import PG_URL, connect_pg, pg_schema_settings

pytestmark = [pytest.mark.asyncio, pytest.mark.postgres]


@pytest.fixture
def sessions() -> Sessions:
    return Sessions(PG_URL)


@pytest.fixture
def pg_store() -> Iterator[Settings]:
    engine = connect_pg()
    try:
        yield from pg_schema_settings(engine)
    finally:
        engine.dispose()


@pytest_asyncio.fixture
async def gateway_on_pg(
    pg_store: Settings,
    sessions: Sessions,
    tmp_path: Path,
    nats_server: NatsServer,
    clock: ManualClock,
) -> AsyncIterator[Gateway]:
    """The gateway, relay and projectors on a PostgreSQL store, their sessions named for `sessions`."""
    settings = gateway_settings(
        tmp_path,
        nats_server,
        database_url=sessions.tag(pg_store.database_url),
        database_schema=pg_store.database_schema,
    )
    async with running_gateway(settings, clock) as gw:
        yield gw


def stored_version(settings: Settings, case_id: str) -> int:
    service = open_service(settings)
    try:
        version: int = service.case(uuid.UUID(case_id))["version"]
        return version
    finally:
        service.close()


async def test_a_dropped_connection_is_a_503_and_the_resend_lands_once(
    gateway_on_pg: Gateway, sessions: Sessions
) -> None:
    gw = gateway_on_pg
    street = gw.auth("street", street="jianwai")
    case_id = await report(gw.client, street)
    accept = f"/api/v1/cases/{case_id}/accept"
    keyed = street | {"Idempotency-Key": uuid.uuid4().hex}

    assert sessions.terminate() > 0
    dropped = await gw.client.post(accept, json={}, headers=keyed)
    assert dropped.status_code == 503, dropped.text
    assert dropped.headers["Retry-After"] == "1"
    assert dropped.json()["code"] == "store_unavailable"
    assert stored_version(gw.settings, case_id) == 1, "a refused command stored something"

    resent = await gw.client.post(accept, json={}, headers=keyed)
    assert resent.status_code == 200, resent.text
    again = await gw.client.post(accept, json={}, headers=keyed)
    assert again.json() == resent.json(), "the key's recorded answer"
    assert stored_version(gw.settings, case_id) == 2


async def test_a_dropped_connection_met_by_a_route_is_the_same_503(
    gateway_on_pg: Gateway, sessions: Sessions
) -> None:
    """Without an Idempotency-Key no middleware touches the store: the command's own load meets it."""
    gw = gateway_on_pg
    street = gw.auth("street", street="jianwai")
    case_id = await report(gw.client, street)

    assert sessions.terminate() > 0
    dropped = await gw.client.post(f"/api/v1/cases/{case_id}/accept", json={}, headers=street)
    assert dropped.status_code == 503, dropped.text
    assert dropped.headers["Retry-After"] == "1"
    assert dropped.json()["code"] == "store_unavailable"
    assert stored_version(gw.settings, case_id) == 1, "a refused command stored something"
