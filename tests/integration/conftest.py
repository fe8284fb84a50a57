"""Real stores for the contract suite: a fresh SQLite file, or a fresh schema in the real PostgreSQL.

PostgreSQL comes from WL_TEST_PG_URL (default: the local `test` database). Locally a missing server skips
those tests with the reason; with CI=true its absence fails the run instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import text

from domain.clock import ManualClock
from domain.service import CaseService
from infra.settings import Settings
from infra.store import open_service

PG_URL = os.environ.get("WL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_engine() -> sqlalchemy.Engine:
    engine = sqlalchemy.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except sqlalchemy.exc.OperationalError as error:
        engine.dispose()
        message = f"PostgreSQL at {PG_URL} is not reachable: {error.orig}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(message)
    return engine


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[sqlalchemy.Engine]:
    engine = _pg_engine()
    yield engine
    engine.dispose()


def _pg_settings(pg_engine: sqlalchemy.Engine) -> Iterator[Settings]:
    schema = f"wl_test_{uuid.uuid4().hex[:12]}"
    with pg_engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield Settings(database_url=PG_URL, database_schema=schema, var_dir=Path("/nonexistent"))
    finally:
        with pg_engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for an empty event store of each kind; every test gets its own."""
    if request.param == "sqlite":
        yield Settings(var_dir=tmp_path / "var")
    else:
        yield from _pg_settings(request.getfixturevalue("pg_engine"))


@pytest.fixture
def service(store_settings: Settings, clock: ManualClock) -> Iterator[CaseService]:
    """A CaseService on a fresh store with the shipped duty list published."""
    svc = open_service(store_settings, clock)
    svc.publish_duty_list()
    yield svc
    svc.close()
