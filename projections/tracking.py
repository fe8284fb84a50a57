"""Reading and writing a projection's tracking and status rows (sync SQL, run in worker threads)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Connection, Engine, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from projections.views_db import projection_skips, projection_status, projection_tracking

RUNNING = "running"
HALTED = "halted"


@dataclass
class Position:
    """How far a projection has applied: both ids only grow."""

    last_notification_id: int = 0
    last_stream_seq: int = 0
    applied: int = 0
    ignored: int = 0

    def covers(self, stream_seq: int, notification_id: int | None = None) -> bool:
        """Already applied (or skipped): a redelivery or a re-published duplicate."""
        if stream_seq <= self.last_stream_seq:
            return True
        return notification_id is not None and notification_id <= self.last_notification_id


@dataclass(frozen=True)
class Failure:
    """The message a projection halted at, with whatever ids it carries."""

    stream_seq: int
    subject: str
    notification_id: int | None
    case_id: str | None
    error: str


@dataclass(frozen=True)
class Status:
    name: str
    state: str
    halted_at_seq: int | None
    halted_subject: str | None
    halted_notification_id: int | None
    halted_case_id: str | None
    error: str | None
    updated_at: datetime


def now() -> datetime:
    return datetime.now(UTC)


def ensure_rows(engine: Engine, name: str) -> None:
    """A fresh projection starts at the beginning of the stream, running."""
    _insert_missing(engine, projection_tracking, name=name, updated_at=now())
    _insert_missing(engine, projection_status, name=name, state=RUNNING, updated_at=now())


def _insert_missing(engine: Engine, table: Table, **values: object) -> None:
    """Inserts the row unless its key exists (another process may be doing the same)."""
    with contextlib.suppress(IntegrityError), engine.begin() as conn:
        conn.execute(insert(table).values(**values))


def lock_position(conn: Connection, name: str) -> Position:
    """Reads the position, write-locking the row first so two runners of one projection serialise."""
    t = projection_tracking.c
    row = conn.execute(
        update(projection_tracking)
        .where(_is(name))
        .values(updated_at=now())
        .returning(t.last_notification_id, t.last_stream_seq, t.applied, t.ignored)
    ).one()
    return Position(*(int(v) for v in row))


def read_position(conn: Connection, name: str) -> Position:
    t = projection_tracking.c
    row = conn.execute(
        select(t.last_notification_id, t.last_stream_seq, t.applied, t.ignored).where(_is(name))
    ).first()
    return Position(*(int(v) for v in row)) if row else Position()


def skipped_seqs(conn: Connection, name: str) -> set[int]:
    """Sequences an operator skipped: a replay from the start skips them again."""
    rows = conn.execute(
        select(projection_skips.c.stream_seq).where(projection_skips.c.name == name)
    ).scalars()
    return {int(seq) for seq in rows}


def save_position(conn: Connection, name: str, position: Position) -> None:
    conn.execute(
        update(projection_tracking)
        .where(_is(name))
        .values(
            last_notification_id=position.last_notification_id,
            last_stream_seq=position.last_stream_seq,
            applied=position.applied,
            ignored=position.ignored,
            updated_at=now(),
        )
    )


def mark_halted(conn: Connection, name: str, failure: Failure) -> None:
    conn.execute(
        update(projection_status)
        .where(_status_is(name))
        .values(
            state=HALTED,
            halted_at_seq=failure.stream_seq,
            halted_subject=failure.subject,
            halted_notification_id=failure.notification_id,
            halted_case_id=failure.case_id,
            error=failure.error,
            updated_at=now(),
        )
    )


def mark_running(conn: Connection, name: str) -> None:
    conn.execute(
        update(projection_status)
        .where(_status_is(name))
        .values(
            state=RUNNING,
            halted_at_seq=None,
            halted_subject=None,
            halted_notification_id=None,
            halted_case_id=None,
            error=None,
            updated_at=now(),
        )
    )


def read_status(conn: Connection, name: str) -> Status | None:
    row = conn.execute(select(projection_status).where(_status_is(name))).first()
    return Status(**row._mapping) if row else None


def _is(name: str) -> ColumnElement[bool]:
    return projection_tracking.c.name == name


def _status_is(name: str) -> ColumnElement[bool]:
    return projection_status.c.name == name
