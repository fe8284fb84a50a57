"""Leadership: exactly one active relay per event store, and one active runner per projection and
views database (`projection_lock`); the others wait as standbys.

PostgreSQL: a session-level advisory lock held on a connection of its own for as long as the relay
leads. SQLite: an exclusive `flock` on `<var_dir>/relay.lock`. The operating system (a closed file
descriptor) or PostgreSQL (a closed session) releases either when the holder dies, however it dies, so a
standby that keeps trying takes over. A standby polls every half second.

The lock keeps relays from doing the same work twice; it is not what keeps the stream correct. Every
message the relay publishes names its predecessor (see infra.relay), so even two relays that both
believed they led could not reorder or duplicate the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Self

import sqlalchemy
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from domain.service import CaseService
from infra.settings import Settings
from infra.store import events_table

log = logging.getLogger(__name__)

#: How often a standby tries to take the lock.
STANDBY_POLL_SECONDS = 0.5
#: A liveness check of the lock's connection that takes longer than this counts as a lost lock.
CHECK_TIMEOUT_SECONDS = 5.0


class LeaderLock(ABC):
    """One attempt-able, checkable, releasable exclusive lock; `with lock:` releases on the way out."""

    #: What is locked, for log lines.
    name: str

    @abstractmethod
    def try_acquire(self) -> bool:
        """Takes the lock if nobody holds it; never blocks waiting for the holder."""

    @abstractmethod
    def still_held(self) -> bool:
        """False once the lock may have passed to someone else (e.g. its connection died)."""

    @abstractmethod
    def release(self) -> None:
        """Gives the lock up (idempotent); the next `try_acquire` starts afresh."""

    async def acquire(self, stop: asyncio.Event, interval: float = STANDBY_POLL_SECONDS) -> bool:
        """Waits as a standby until the lock is ours (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if await asyncio.to_thread(self.try_acquire):
                    return True
            except Exception as error:  # a database that is down: keep standing by
                log.warning("leader lock attempt failed: %s", error, extra={"lock": self.name})
                await asyncio.to_thread(self.release)
            if not announced:
                log.info("standing by: another process holds the lock", extra={"lock": self.name})
                announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
        return False

    async def check(self, timeout: float = CHECK_TIMEOUT_SECONDS) -> bool:
        """`still_held`, off the event loop; an error or a hang counts as lost."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.still_held), timeout)
        except Exception as error:
            log.warning("leader lock check failed: %s", error, extra={"lock": self.name})
            return False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()


class NoLeaderLock(LeaderLock):
    """A lock everybody holds at once: for a relay alone on a private store (benchmarks), or to show
    what two relays that both think they lead do (tests)."""

    name = "no lock"

    def try_acquire(self) -> bool:
        return True

    def still_held(self) -> bool:
        return True

    def release(self) -> None:
        pass


class FileLeaderLock(LeaderLock):
    """An exclusive `flock` on a file; per open file, so it also excludes a second lock in-process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who leads, for an operator's `cat`
        self._fd = fd
        return True

    def still_held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None


class PgAdvisoryLeaderLock(LeaderLock):
    """`pg_try_advisory_lock(key)` on a dedicated autocommit connection (no idle transaction)."""

    def __init__(
        self, url: str, key: int, name: str, application: str = "whistleloop-relay-lock"
    ) -> None:
        self.key = key
        self.name = name
        # TCP keepalives make a vanished server show up as an error rather than a hang.
        self._engine = sqlalchemy.create_engine(
            url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={
                "connect_timeout": 5,
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 3,
                "application_name": application,
            },
        )
        self._conn: sqlalchemy.Connection | None = None
        self._held = False

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL session holding (or trying for) the lock."""
        if self._conn is None:
            return None
        pid: int = self._conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        return pid

    def try_acquire(self) -> bool:
        if self._held:
            return True
        if self._conn is None:
            self._conn = self._engine.connect()
        got = self._conn.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
        ).scalar_one()
        self._held = bool(got)
        return self._held

    def still_held(self) -> bool:
        """A session-level advisory lock lasts as long as its session: a live session holds it."""
        if not self._held or self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1")).scalar_one()
        except sqlalchemy.exc.SQLAlchemyError:
            self.release()
            return False
        return True

    def release(self) -> None:
        self._held = False
        if self._conn is not None:
            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                self._conn.close()  # ends the session, and with it the lock
            self._conn = None

    def dispose(self) -> None:
        self.release()
        self._engine.dispose()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.dispose()


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for a lock's name: the relay's is its event table
    (`schema.table`), a projection's its `projection_lock` name."""
    digest = hashlib.blake2b(f"whistleloop.relay:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def leader_lock(settings: Settings, service: CaseService) -> LeaderLock:
    """The relay lock for the store these settings name."""
    if settings.is_sqlite:
        return FileLeaderLock(Path(settings.var_dir) / "relay.lock")
    table = events_table(service)
    return PgAdvisoryLeaderLock(settings.event_store_url(), advisory_key(table), table)


def projection_lock(views: sqlalchemy.Engine, projection: str) -> LeaderLock:
    """The lock of one projection on the views database `views` names.

    Two runners of one projection would pull from the same durable consumer, and a later batch
    committed before an earlier one would move the tracking row past events that are then skipped.
    SQLite: a `flock` on a file beside the database file. PostgreSQL: an advisory lock keyed by the
    database and schema the engine's connections land in (asked, not parsed from the URL, so two
    spellings of one server share the lock).
    """
    if views.dialect.name == "sqlite":
        database = Path(views.url.database or "views.db")
        return FileLeaderLock(database.with_name(f"{database.name}.{projection}.lock"))
    with views.connect() as conn:
        where = conn.execute(text("SELECT current_database() || '.' || current_schema()")).scalar()
    name = f"projection {projection} on {where}"
    url = views.url.render_as_string(hide_password=False)
    return PgAdvisoryLeaderLock(url, advisory_key(name), name, "whistleloop-projection-lock")
