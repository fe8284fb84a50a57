"""Helpers for projections that roll events up into counters: days, durations, bulk upserts, caches.

Rebuild speed is set by round trips, not by Python: a projection folds each event into memory (a
`Deltas` of counter increments per key, a `CaseCache` of the per-case rows it reads) and writes the
batch in `end_batch` with one `executemany` per table. The upserts are the dialects' own
`INSERT … ON CONFLICT DO UPDATE` (SQLite and PostgreSQL spell it alike), so adding to a counter row
that may not exist yet is one statement, and concurrent readers never see a half-added batch.
`CaseProjection` is the frame of a projection built that way (`case_board`, and with counters
`CaseRollup`: `dept_performance`, `linkage`).
"""

from __future__ import annotations

import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from domain.clock import CHINA_TZ
from infra.envelopes import CASE_TOPIC_PREFIX
from infra.event_codec import EventEnvelope
from projections import tracking
from projections.base import ApplyContext

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")
Key = tuple[str, ...]


def china_day(timestamp: str) -> str:
    """The China date (`YYYY-MM-DD`, UTC+8) of an envelope's ISO-8601 UTC timestamp.

    Counts are booked by the day people in Beijing see on the wall, so a report-in at 23:30 UTC is
    on the next day's row.
    """
    return datetime.fromisoformat(timestamp).astimezone(CHINA_TZ).date().isoformat()


def seconds_between(start: str, end: str) -> float:
    """`end − start` in seconds, both ISO-8601 timestamps as envelopes carry them."""
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (the generic one does not)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"roll-ups support SQLite and PostgreSQL, not {dialect}")


def add_deltas(
    conn: Connection, table: Table, keys: Sequence[str], rows: list[dict[str, Any]]
) -> None:
    """Adds each row's non-key values to the stored row with the same key, inserting missing rows.

    Every row must name the same columns in the same order (fill untouched ones with 0). Counters
    are plain numbers, so the statement goes to the driver as it is (one executemany): SQLAlchemy's
    per-parameter processing cost more than SQLite's own work for these wide rows.
    """
    if rows:
        names = tuple(rows[0])
        sql = _delta_sql(conn.dialect.name, table.name, tuple(keys), names)
        conn.exec_driver_sql(sql, [tuple(row[name] for name in names) for row in rows])


@cache
def _delta_sql(dialect: str, table: str, keys: tuple[str, ...], names: tuple[str, ...]) -> str:
    if dialect not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"roll-ups support SQLite and PostgreSQL, not {dialect}")
    marker = "?" if dialect == "sqlite" else "%s"
    added = ", ".join(f"{n} = {table}.{n} + excluded.{n}" for n in names if n not in keys)
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(marker for _ in names)}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {added}"
    )


def upsert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Writes whole rows: inserted when new, every non-key column replaced when the key exists."""
    if rows:
        keys = tuple(column.name for column in table.primary_key)
        others = tuple(c.name for c in table.columns if c.name not in keys)
        conn.execute(_upsert(conn, table, keys, others), rows)


_STATEMENTS: dict[tuple[str, Table, tuple[str, ...], tuple[str, ...]], Any] = {}


def _upsert(conn: Connection, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    """The upsert statement, built once per dialect and shape (building it costs more than a
    batch of small rows takes to write). Through SQLAlchemy: rows may hold JSON values."""
    cache_key = (conn.dialect.name, table, keys, columns)
    stmt = _STATEMENTS.get(cache_key)
    if stmt is None:
        insert = _insert(conn, table)
        stmt = _STATEMENTS[cache_key] = insert.on_conflict_do_update(
            index_elements=list(keys), set_={name: insert.excluded[name] for name in columns}
        )
    return stmt


def load_case_rows(
    conn: Connection, cases: Table, departments: Table, case_id: str
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]] | None:
    """A case's row and its per-department rows by department (both tables keyed by case_id)."""
    found = conn.execute(select(cases).where(cases.c.case_id == case_id)).first()
    if found is None:
        return None
    rows = conn.execute(select(departments).where(departments.c.case_id == case_id)).all()
    return dict(found._mapping), {row.department: dict(row._mapping) for row in rows}


class Deltas:
    """Counter increments per key of one roll-up table, summed in memory over a batch."""

    def __init__(self, table: Table, keys: Sequence[str]) -> None:
        self.table = table
        self.keys = tuple(keys)
        self.columns = tuple(c.name for c in table.columns if c.name not in self.keys)
        self.rows: dict[Key, dict[str, float]] = {}

    def add(self, key: Key, column: str, amount: float = 1) -> None:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = dict.fromkeys(self.columns, 0)
        row[column] += amount  # a KeyError here is a misspelt column: a bug, loudly

    def clear(self) -> None:
        self.rows.clear()

    def summed_by(self, *keys: str) -> list[dict[str, Any]]:
        """The buffered rows summed per value of some of the key columns (for a narrower roll-up)."""
        positions = [self.keys.index(name) for name in keys]
        summed: dict[Key, dict[str, float]] = {}
        for key, row in self.rows.items():
            narrow = tuple(key[i] for i in positions)
            into = summed.get(narrow)
            if into is None:
                summed[narrow] = dict(row)
            else:
                for column, amount in row.items():
                    into[column] += amount
        return [dict(zip(keys, key, strict=True)) | row for key, row in summed.items()]

    def write(self, conn: Connection) -> None:
        """Adds every buffered row to the table (one executemany) and empties the buffer."""
        add_deltas(
            conn,
            self.table,
            self.keys,
            [dict(zip(self.keys, key, strict=True)) | row for key, row in self.rows.items()],
        )
        self.clear()


_MISSING: Any = object()


class CaseCache(Generic[K, V]):
    """Per-case state read on first touch and kept in memory for as long as it is known to be true.

    A projection folds events into the cached states, `mark`s those it changed and writes `changed()`
    in `end_batch`. Entries outlive a batch (in a stream where cases interleave, most events touch a
    case some earlier batch read) but only while the database provably holds what they say:
    `begin_batch` keeps them only if the previous batch reached `end_batch` AND its commit landed —
    the projection's tracking row then names the last event this projection was given (the runner
    saves that notification id with the batch). A rollback, a halt's shorter retry, an operator's
    reset or another process running the projection all leave a different id there, and the cache
    starts empty. `load` returns None for an unknown key (remembered too). At most `limit` entries
    are kept, least recently used dropped first.
    """

    def __init__(
        self, name: str, load: Callable[[Connection, K], V | None], limit: int = 10_000
    ) -> None:
        self.name = name
        self._load = load
        self.limit = limit
        self._entries: dict[K, V | None] = {}
        self._changed: dict[K, V] = {}
        self._seen = 0  # the last notification id given to the projection
        self._written: int | None = None  # _seen at the last completed end_batch

    def begin_batch(self, conn: Connection) -> None:
        kept = self._written is not None and self._written == _tracked(conn, self.name)
        if not kept:
            self._entries.clear()
        self._changed.clear()
        self._written = None

    def seen(self, notification_id: int) -> None:
        """Every event `apply` is given, handled or not (the runner tracks them all)."""
        self._seen = notification_id

    def get(self, conn: Connection, key: K) -> V | None:
        found = self._entries.pop(key, _MISSING)
        if found is _MISSING:
            found = self._load(conn, key)
        self._entries[key] = found  # most recently used last
        return found

    def put(self, key: K, value: V) -> None:
        """A new entry (also marked changed)."""
        self._entries[key] = value
        self._changed[key] = value

    def mark(self, key: K) -> None:
        value = self._entries.get(key)
        if value is None:
            raise KeyError(key)
        self._changed[key] = value

    def changed(self) -> list[V]:
        return list(self._changed.values())

    def end_batch(self) -> None:
        """The changed entries are written: forget that they changed, trim to `limit`."""
        self._changed.clear()
        excess = len(self._entries) - self.limit
        if excess > 0:
            for key in list(itertools.islice(self._entries, excess)):
                del self._entries[key]
        self._written = self._seen


def _tracked(conn: Connection, name: str) -> int:
    return tracking.read_position(conn, name).last_notification_id


S = TypeVar("S")


class CaseProjection(ABC, Generic[S]):
    """A projection that folds each case's events into per-case state `S`, written per batch.

    The duty list's events and event types the subclass does not know are not handled; a case's
    report creates its state; later events are folded by the subclass, which never touches the
    database there — `end_batch` writes the states changed in the batch.
    """

    name: str
    tables: tuple[Table, ...]
    subjects: tuple[str, ...] = ("wl.ev.>",)
    #: The case event types `fold` knows (CaseReported included).
    event_types: frozenset[str]

    def __init__(self) -> None:
        self._cases: CaseCache[str, S] = CaseCache(self.name, self.load)

    @abstractmethod
    def load(self, conn: Connection, case_id: str) -> S | None:
        """The case's stored state, or None."""

    @abstractmethod
    def reported(self, envelope: EventEnvelope) -> S:
        """The state of a freshly reported case."""

    @abstractmethod
    def fold(self, state: S, envelope: EventEnvelope) -> bool:
        """Folds a later event of the case into its state (in place)."""

    @abstractmethod
    def write(self, conn: Connection, states: list[S]) -> None:
        """Writes the states changed in this batch."""

    def begin_batch(self, conn: Connection) -> None:
        self._cases.begin_batch(conn)

    def end_batch(self, conn: Connection) -> None:
        self.write(conn, self._cases.changed())
        self._cases.end_batch()

    def apply(self, conn: Connection, envelope: EventEnvelope, context: ApplyContext) -> bool:
        """Folds one event into the batch's buffers; `end_batch` writes them."""
        self._cases.seen(envelope.notification_id)
        if (
            not envelope.topic.startswith(CASE_TOPIC_PREFIX)
            or envelope.event_type not in self.event_types
        ):
            return False  # the duty list's events, or a case event this version does not know
        case_id = envelope.aggregate_id
        state = self._cases.get(conn, case_id)
        if envelope.event_type == "CaseReported":
            if state is None:
                self._cases.put(case_id, self.reported(envelope))
            return True
        if state is None:  # its report was skipped by an operator: a known divergence
            log.warning(
                "event of a case the projection does not hold; ignored",
                extra={
                    "projection": self.name,
                    "case_id": case_id,
                    "notification_id": envelope.notification_id,
                },
            )
            return False
        handled = self.fold(state, envelope)
        if handled:
            self._cases.mark(case_id)
        return handled


class CaseRollup(CaseProjection[S]):
    """A `CaseProjection` that also sums counter `Deltas` (`dept_performance`, `linkage`)."""

    def __init__(self, deltas: Deltas) -> None:
        super().__init__()
        self._deltas = deltas

    @abstractmethod
    def fold_counting(self, state: S, envelope: EventEnvelope, deltas: Deltas) -> bool:
        """Folds a later event of the case into its state and the batch's counters."""

    def fold(self, state: S, envelope: EventEnvelope) -> bool:
        return self.fold_counting(state, envelope, self._deltas)

    def begin_batch(self, conn: Connection) -> None:
        super().begin_batch(conn)
        self._deltas.clear()

    def end_batch(self, conn: Connection) -> None:
        self._deltas.write(conn)
        super().end_batch(conn)
