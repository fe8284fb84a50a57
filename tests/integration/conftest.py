"""Integration fixtures: the contract suite's service on each store, and the projection tests' event
store, shared corpus, views database of each kind and NATS client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy
from nats.aio.client import Client
from sqlalchemy import Engine, text

from domain.actors import Actor
from domain.clock import ManualClock
from domain.service import CaseService
from infra.event_codec import EventEnvelope
from infra.nats.connection import connect
from infra.nats.server import NatsServer
from infra.nats.streams import ensure_streams
from infra.settings import Settings
from infra.store import open_service
from projections.views_db import create_views_tables, open_views_engine
from tests.conftest import START
from tests.integration.builders import run_full_loop
from tests.integration.projections.support import RelayLike
from tests.stores import PG_URL


@pytest.fixture
def service(store_settings: Settings, clock: ManualClock) -> Iterator[CaseService]:
    """A CaseService on a fresh store with the shipped duty list published."""
    svc = open_service(store_settings, clock)
    svc.publish_duty_list()
    yield svc
    svc.close()


#: Full loops (22 events each) in the shared corpus: a few thousand events.
CORPUS_CASES = 140


@pytest.fixture
def event_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseService]:
    """A fresh event store with the duty list published, for tests that drive their own cases."""
    service = open_service(Settings(var_dir=tmp_path_factory.mktemp("events")), ManualClock(START))
    service.publish_duty_list()
    yield service
    service.close()


@pytest.fixture(scope="session")
def corpus(
    tmp_path_factory: pytest.TempPathFactory, actors: dict[str, Actor]
) -> list[EventEnvelope]:
    """The duty list and CORPUS_CASES full loops, as the relay would publish them (built once)."""
    settings = Settings(var_dir=tmp_path_factory.mktemp("corpus") / "var")
    service = open_service(settings, ManualClock(START))
    try:
        service.publish_duty_list()
        for _ in range(CORPUS_CASES):
            run_full_loop(service, service.clock, actors)  # type: ignore[arg-type]
        return RelayLike(service).new_envelopes()
    finally:
        service.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def views_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings whose read-model DB is a fresh SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield Settings(var_dir=tmp_path / "var")
        return
    pg_engine: sqlalchemy.Engine = request.getfixturevalue("pg_engine")
    schema = f"wl_views_{uuid.uuid4().hex[:12]}"
    with pg_engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        yield Settings(views_database_url=url, var_dir=tmp_path / "var")
    finally:
        with pg_engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def views_engine(views_settings: Settings) -> Iterator[Engine]:
    engine = open_views_engine(views_settings)
    create_views_tables(engine)
    yield engine
    engine.dispose()


@pytest_asyncio.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    """A client on a fresh server with the streams created."""
    client = await connect(nats_server.url, name="projection-test")
    await ensure_streams(client.jetstream())
    try:
        yield client
    finally:
        await client.close()
