"""Real stores for tests: a fresh SQLite file, or a fresh schema in the real PostgreSQL.

PostgreSQL comes from WL_TEST_PG_URL (default: the local `test` database). Locally a missing server
skips those tests with the reason; with CI=true its absence fails the run instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import text

from infra.settings import Settings

PG_URL = os.environ.get("WL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def connect_pg() -> sqlalchemy.Engine:
    """An engine on the test server, or a skip (a failure under CI) saying why there is none."""
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


def pg_schema_settings(pg_engine: sqlalchemy.Engine) -> Iterator[Settings]:
    """Settings for a schema of its own, dropped afterwards: tests never see each other's events."""
    schema = f"wl_test_{uuid.uuid4().hex[:12]}"
    with pg_engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield Settings(database_url=PG_URL, database_schema=schema, var_dir=Path("/nonexistent"))
    finally:
        with pg_engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
