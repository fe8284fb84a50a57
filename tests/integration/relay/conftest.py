"""Fixtures of the relay tests: settings that point at the test's nats-server, template events, processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy
from eventsourcing.persistence import StoredEvent

from domain.actors import Actor
from domain.clock import ManualClock
from domain.service import CaseService
from infra.nats.server import NatsServer
from infra.settings import Settings
from tests.integration.relay.support import RelayProcess, template_events
from tests.stores import pg_schema_settings


@pytest.fixture
def relay_settings(store_settings: Settings, nats_server: NatsServer) -> Settings:
    """The test's store and server; quick polls and a short ack timeout so faults recover fast."""
    return store_settings.model_copy(
        update={"nats_url": nats_server.url, "relay_poll_interval": 0.2, "relay_ack_timeout": 3.0}
    )


@pytest.fixture
def template(
    service: CaseService, clock: ManualClock, actors: dict[str, Actor]
) -> list[StoredEvent]:
    """A case through the whole loop, stored; its rows are the pattern bulk events are copied from."""
    return template_events(service, clock, actors)


@pytest.fixture
def relay_procs() -> Iterator[list[RelayProcess]]:
    """Relay processes the test starts; every one is killed afterwards, passed or failed."""
    started: list[RelayProcess] = []
    yield started
    for relay in started:
        relay.kill()


@pytest.fixture
def pg_relay_settings(pg_engine: sqlalchemy.Engine, nats_server: NatsServer) -> Iterator[Settings]:
    """A fresh PostgreSQL schema and the test's server, for what only PostgreSQL has (sessions)."""
    schemas = pg_schema_settings(pg_engine)
    settings = next(schemas)
    yield settings.model_copy(update={"nats_url": nats_server.url, "relay_poll_interval": 0.2})
    next(schemas, None)
