"""Operator actions on a projection: resume after a fix, skip one sequence, reset for a rebuild.

They write the status and tracking rows; a running projector polls a halted projection's status and
picks the change up (`RunnerOptions.halt_poll`), and a stopped one starts from them next time.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, delete, insert, inspect, select

from infra.settings import Settings
from projections import registry, tracking
from projections.base import Projection
from projections.tracking import HALTED, Position
from projections.views_db import (
    create_views_tables,
    open_views_engine,
    projection_skips,
    projection_status,
    projection_tracking,
)

log = logging.getLogger(__name__)


class NotHalted(ValueError):
    """The operator named a projection or sequence that is not where it halted."""


def resume(settings: Settings, name: str) -> None:
    """Lets a halted projection retry the message it halted at (after the bug is fixed)."""
    engine = open_views_engine(settings)
    try:
        create_views_tables(engine)  # a fresh views database: nothing halted, say so plainly
        resume_projection(engine, name)
    finally:
        engine.dispose()


def skip(settings: Settings, name: str, seq: int) -> None:
    """Skips the one message a projection halted at; its read model knowingly misses that event."""
    engine = open_views_engine(settings)
    try:
        create_views_tables(engine)  # a fresh views database: nothing halted, say so plainly
        skip_sequence(engine, name, seq)
    finally:
        engine.dispose()


def reset(settings: Settings, name: str) -> None:
    """Empties a registered projection's tables and tracking: it replays from the stream's start."""
    projection = registry.registered(settings)[name]()
    engine = open_views_engine(settings)
    try:
        reset_projection(engine, projection)
    finally:
        engine.dispose()


def resume_projection(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        status = tracking.read_status(conn, name)
        if status is None or status.state != HALTED:
            raise NotHalted(f"projection {name} is not halted")
        tracking.mark_running(conn, name)
    log.warning(
        "projection resumed by an operator; it retries sequence %s",
        status.halted_at_seq,
        extra={"projection": name, "stream_seq": status.halted_at_seq},
    )


def skip_sequence(engine: Engine, name: str, seq: int) -> None:
    with engine.begin() as conn:
        status = tracking.read_status(conn, name)
        if status is None or status.state != HALTED or status.halted_at_seq != seq:
            if status is None or status.state != HALTED:
                raise NotHalted(f"projection {name} is not halted: nothing to skip")
            raise NotHalted(f"projection {name} is halted at {status.halted_at_seq}, not at {seq}")
        position = tracking.lock_position(conn, name)
        position.last_stream_seq = max(position.last_stream_seq, seq)
        if status.halted_notification_id is not None:
            position.last_notification_id = max(
                position.last_notification_id, status.halted_notification_id
            )
        tracking.save_position(conn, name, position)
        conn.execute(
            insert(projection_skips).values(
                name=name,
                stream_seq=seq,
                notification_id=status.halted_notification_id,
                error=status.error,
                skipped_at=tracking.now(),
            )
        )
        tracking.mark_running(conn, name)
    log.warning(
        "OPERATOR SKIPPED an event: the read model will not reflect it",
        extra={
            "projection": name,
            "stream_seq": seq,
            "subject": status.halted_subject,
            "notification_id": status.halted_notification_id,
            "case_id": status.halted_case_id,
            "error": status.error,
        },
    )


def reset_projection(engine: Engine, projection: Projection) -> None:
    """Stop the projector first. Recorded skips stay: a replay skips those sequences again."""
    create_views_tables(engine)
    with engine.begin() as conn:
        for table in projection.tables:
            conn.execute(delete(table))
        tracking.save_position(conn, projection.name, Position())
        tracking.mark_running(conn, projection.name)
    log.warning(
        "projection reset; it replays from the start", extra={"projection": projection.name}
    )


def status_rows(engine: Engine) -> list[dict[str, Any]]:
    """One row per projection: position, counts and state (for the CLI and `/readyz`)."""
    t, s = projection_tracking.c, projection_status.c
    query = (
        select(
            t.name,
            s.state,
            t.last_notification_id,
            t.last_stream_seq,
            t.applied,
            t.ignored,
            s.halted_at_seq,
            s.halted_subject,
            s.halted_notification_id,
            s.halted_case_id,
            s.error,
            t.updated_at,
        )
        .join(projection_status, s.name == t.name, isouter=True)
        .order_by(t.name)
    )
    with engine.connect() as conn:
        if not inspect(conn).has_table(projection_tracking.name):
            return []  # no projector has run yet
        return [dict(row._mapping) for row in conn.execute(query)]
