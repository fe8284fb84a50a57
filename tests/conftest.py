"""Fixtures every test level shares: a fake clock, the real calendar table, actors, reference data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy

from domain.actors import Actor
from domain.calendar import HolidayTable, TableHolidayProvider, WeekendsOnly, WorkingCalendar
from domain.clock import ManualClock
from domain.reference import ReferenceData, load_reference
from infra.nats.server import NatsServer
from infra.settings import Settings
from tests.stores import connect_pg, pg_schema_settings

#: A Monday morning in Beijing (09:00 +08:00), clear of holidays.
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def reference() -> ReferenceData:
    return load_reference()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture(scope="session")
def calendar() -> WorkingCalendar:
    """The shipped table with a weekends-only fallback: the domain's own behaviour, no third party."""
    return WorkingCalendar(TableHolidayProvider(HolidayTable.shipped(), WeekendsOnly()))


@pytest.fixture(scope="session")
def actors() -> dict[str, Actor]:
    return {
        "resident": Actor.of("resident", "r-1001"),
        "grid": Actor.of("grid_worker", "gw-07"),
        "street": Actor.of("street", "jianwai"),
        "other_street": Actor.of("street", "chaowai"),
        "centre": Actor.of("command_centre", "cc-1"),
        "inspector": Actor.of("inspector", "jw-3"),
        "system": Actor.of("system", "sla-clock"),
        "cgzf": Actor.of("department", "cgzf"),
        "ghzr": Actor.of("department", "ghzr"),
        "zj": Actor.of("department", "zj"),
        "sthj": Actor.of("department", "sthj"),
    }


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[sqlalchemy.Engine]:
    engine = connect_pg()
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for an empty event store of each kind; every test gets its own."""
    if request.param == "sqlite":
        yield Settings(var_dir=tmp_path / "var")
    else:
        yield from pg_schema_settings(request.getfixturevalue("pg_engine"))


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server (from the wheel) with JetStream on a free port; killed afterwards."""
    server = NatsServer(tmp_path / "nats").start()
    yield server
    server.kill()
