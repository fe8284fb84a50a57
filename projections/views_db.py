"""The read-model database: its engine, the shared `MetaData`, and the runner's own two tables.

Read models live apart from the event store (`WL_VIEWS_DATABASE_URL`, default SQLite
`<var_dir>/views.db` in WAL mode) so projector writes never block command writes. On PostgreSQL a schema
is chosen with libpq's options in the URL (`?options=-csearch_path%3D<schema>`), which is how tests
isolate themselves; every table here is unqualified and lands in that schema.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from infra.settings import Settings

#: Every read-model table registers here, so `create_all` builds what the imported projections need.
metadata = MetaData()

#: Times as envelopes carry them: ISO-8601 UTC of one fixed width (`iso_utc`), so they compare and
#: sort as text on SQLite and PostgreSQL alike.
TIME = String(32)
#: China dates (`YYYY-MM-DD`, UTC+8): the days roll-ups are booked on.
DAY = String(10)

#: One row per projection: how far it has applied, committed with the read model it describes.
projection_tracking = Table(
    "projection_tracking",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("last_notification_id", BigInteger, nullable=False, default=0),
    Column("last_stream_seq", BigInteger, nullable=False, default=0),
    Column("applied", BigInteger, nullable=False, default=0),
    Column("ignored", BigInteger, nullable=False, default=0),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: One row per projection: running, or halted at a stream sequence it could not decode or apply.
projection_status = Table(
    "projection_status",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("state", String(16), nullable=False),  # 'running' | 'halted'
    Column("halted_at_seq", BigInteger),
    Column("halted_subject", Text),
    Column("halted_notification_id", BigInteger),
    Column("halted_case_id", String(64)),
    Column("error", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: Every sequence an operator told a projection to skip: a skipped event is a known divergence.
projection_skips = Table(
    "projection_skips",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("stream_seq", BigInteger, primary_key=True),
    Column("notification_id", BigInteger),
    Column("error", Text),
    Column("skipped_at", DateTime(timezone=True), nullable=False),
)


def open_views_engine(settings: Settings) -> Engine:
    """An engine on the read-model database; creates `var/` for the default SQLite file."""
    url = make_url(settings.views_url())
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # Batches are applied in worker threads (asyncio.to_thread), one connection per batch.
    engine = create_engine(url, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    """WAL lets readers (gateway queries) run beside the projector's writes.

    `synchronous=NORMAL` is safe for read models: in WAL mode a power cut can lose the last commits
    but never leaves a torn one, and a lost commit takes its tracking row with it, so the runner
    re-applies those events. A 32 MiB page cache keeps the hot B-tree pages of 10⁶-event read
    models in memory during a rebuild (SQLite's default is 2 MiB).
    """
    cursor = dbapi_connection.cursor()
    _use_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-32768")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """WAL is a property of the file, set once. Switching to it takes a lock SQLite does not wait
    for (no busy handler), so a process connecting while another creates the tables of a fresh
    database retries rather than fail with "database is locked"."""

    def switch() -> None:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")

    _retried(switch, lambda e: isinstance(e, sqlite3.OperationalError) and "locked" in str(e))


def writing(engine: Engine) -> AbstractContextManager[object]:
    """Held around a write transaction on the views database.

    SQLite has one writer at a time, and a writer waiting for the lock sleeps in growing steps (up
    to 100 ms each) in its busy handler: with six projectors in one process, that sleeping was most
    of their lag under load. Runners of one process take turns on a Python lock instead, which
    hands over at once. Other processes (a rebuild) still meet the busy handler; PostgreSQL needs
    no turn-taking.
    """
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(str(engine.url), threading.Lock())


_WRITERS: dict[str, threading.Lock] = {}
_WRITERS_LOCK = threading.Lock()


def create_views_tables(engine: Engine) -> None:
    """Creates every registered table that is missing (idempotent; safe from every process).

    `whistleloop up` starts the projector, the SLA clock and the gateway at once on a fresh
    database, and `checkfirst` is not atomic: two processes may both find a table missing, and the
    second CREATE fails ("already exists" on SQLite, a duplicate type on PostgreSQL). The loser
    tries again, and then finds what the winner made.
    """
    _retried(lambda: metadata.create_all(engine, checkfirst=True), _created_meanwhile)


#: Tries of an operation that races other processes on a fresh views database.
CREATE_ATTEMPTS = 5


def _retried(operation: Callable[[], object], retryable: Callable[[Exception], bool]) -> None:
    """Runs `operation`, again after 50 ms, 100 ms… while it fails as `retryable` says a race
    does, up to CREATE_ATTEMPTS tries; any other failure, or the last, is raised."""
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            operation()
            return
        except Exception as error:
            if attempt == CREATE_ATTEMPTS or not retryable(error):
                raise
            time.sleep(0.05 * attempt)


def _created_meanwhile(error: Exception) -> bool:
    if not isinstance(error, (OperationalError, ProgrammingError, IntegrityError)):
        return False
    text = str(error.orig).lower()
    return "already exists" in text or "duplicate key" in text
