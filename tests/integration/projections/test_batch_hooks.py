"""The runner's optional batch hooks: buffered writes commit with their batch, and only once.

A buffering projection sums per-case counters in memory and writes them in `end_batch` with the
roll-up upsert. Its buffer is emptied ONLY in `begin_batch`, so if the runner retried a rolled-back
batch without calling `begin_batch` again, the deltas folded in the failed try would be written a
second time and the counts would show it. Two kinds of bad input are met: an `apply` that raises in
the middle of a batch, and a bulk write that the database itself refuses (a NOT NULL violation) — the
runner then redoes the batch writing after every event, so the halt names the event that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from nats.aio.client import Client
from sqlalchemy import Connection, Engine, Table, select

from domain.actors import Actor
from domain.clock import ManualClock
from domain.service import CaseService
from infra.event_codec import EventEnvelope
from projections.base import ApplyContext
from projections.control import resume_projection
from projections.rollup import add_deltas
from projections.runner import ProjectorRunner, RunnerOptions
from tests.integration.builders import run_full_loop
from tests.integration.projections.counting import count_table, expected_counts, test_metadata
from tests.integration.projections.support import (
    RelayLike,
    eventually,
    halted,
    position,
    reached,
    running,
    status,
)

pytestmark = pytest.mark.asyncio

OPTIONS = RunnerOptions(batch=40, fetch_timeout=0.2, halt_poll=0.1)


def buffered_table(name: str) -> Table:
    """The same per-case counts `CountingProjection` keeps, in a table of this projection's own."""
    return count_table(f"buffered_{name}")


@dataclass
class BufferingProjection:
    """Counts events per case like `CountingProjection`, but through the batch hooks.

    `fail_on`: `apply` raises there; `poison`: that event's delta is NULL, which the database refuses
    when `end_batch` writes it.
    """

    name: str
    fail_on: set[int] = field(default_factory=set)
    poison: set[int] = field(default_factory=set)
    begun: int = 0
    ended: int = 0
    subjects: tuple[str, ...] = ("wl.ev.>",)
    buffer: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def tables(self) -> tuple[Table, ...]:
        return (buffered_table(self.name),)

    def begin_batch(self, conn: Connection) -> None:
        self.begun += 1
        self.buffer.clear()  # the only place it is emptied

    def end_batch(self, conn: Connection) -> None:
        self.ended += 1
        rows = [{"case_id": case_id, **delta} for case_id, delta in self.buffer.items()]
        add_deltas(conn, buffered_table(self.name), ("case_id",), rows)

    def apply(self, conn: Connection, envelope: EventEnvelope, context: ApplyContext) -> bool:
        if envelope.notification_id in self.fail_on:
            raise RuntimeError(f"simulated bug on notification {envelope.notification_id}")
        if envelope.aggregate != "case":
            return False
        delta = self.buffer.setdefault(
            envelope.aggregate_id,
            {"events": 0, "last_version": 0, "notification_sum": 0, "last_notification_id": 0},
        )
        bad = envelope.notification_id in self.poison
        delta["events"] = None if bad or delta["events"] is None else delta["events"] + 1
        # Versions and ids only grow: adding the step since the last one keeps the last value.
        delta["notification_sum"] += envelope.notification_id
        delta["last_version"] = envelope.version - self._last(conn, envelope, "last_version")
        delta["last_notification_id"] = envelope.notification_id - self._last(
            conn, envelope, "last_notification_id"
        )
        return True

    def _last(self, conn: Connection, envelope: EventEnvelope, column: str) -> int:
        table = buffered_table(self.name)
        stored = conn.execute(
            select(table.c[column]).where(table.c.case_id == envelope.aggregate_id)
        ).scalar()
        return int(stored or 0)


def buffered_rows(engine: Engine, name: str) -> dict[str, tuple[int, int, int, int]]:
    table = buffered_table(name)
    with engine.connect() as conn:
        return {
            row.case_id: (
                row.events,
                row.last_version,
                row.notification_sum,
                row.last_notification_id,
            )
            for row in conn.execute(select(table))
        }


async def publish_loops(
    nc: Client, service: CaseService, actors: dict[str, Actor], loops: int
) -> list[EventEnvelope]:
    clock: ManualClock = service.clock  # type: ignore[assignment]
    for _ in range(loops):
        run_full_loop(service, clock, actors)
    return await RelayLike(service).publish_new(nc.jetstream())


async def test_a_halted_batch_is_retried_from_a_fresh_buffer(
    nc: Client, views_engine: Engine, event_store: CaseService, actors: dict[str, Actor]
) -> None:
    events = await publish_loops(nc, event_store, actors, 6)  # 133 events: 4 batches of 40
    bad = events[57]  # in the middle of the second batch
    projection = BufferingProjection("hooks_halt", fail_on={bad.notification_id})
    test_metadata.create_all(views_engine)

    async with running(ProjectorRunner(nc, views_engine, [projection], OPTIONS)):
        await eventually(halted(views_engine, projection.name), "the projection to halt")
        # Only the try that met the bug began without ending; its retry began afresh.
        assert projection.begun == projection.ended + 1
        assert buffered_rows(views_engine, projection.name) == expected_counts(events[:57])
        assert position(views_engine, projection.name).last_notification_id == (
            events[56].notification_id
        )

        projection.fail_on.clear()
        resume_projection(views_engine, projection.name)
        await eventually(
            reached(views_engine, projection.name, events[-1].notification_id),
            "the resumed projection to finish",
        )
    assert buffered_rows(views_engine, projection.name) == expected_counts(events)


async def test_a_refused_bulk_write_halts_at_the_event_that_caused_it(
    nc: Client, views_engine: Engine, event_store: CaseService, actors: dict[str, Actor]
) -> None:
    events = await publish_loops(nc, event_store, actors, 6)
    bad = events[70]
    projection = BufferingProjection("hooks_flush", poison={bad.notification_id})
    test_metadata.create_all(views_engine)

    async with running(ProjectorRunner(nc, views_engine, [projection], OPTIONS)):
        await eventually(halted(views_engine, projection.name), "the projection to halt")
        row = status(views_engine, projection.name)
        assert row is not None
        assert row.halted_notification_id == bad.notification_id
        assert row.error is not None
        assert "IntegrityError" in row.error
        # Everything before the poisoned event is committed exactly once; it and later ones not.
        assert buffered_rows(views_engine, projection.name) == expected_counts(events[:70])

        projection.poison.clear()  # the fix is deployed
        resume_projection(views_engine, projection.name)
        await eventually(
            reached(views_engine, projection.name, events[-1].notification_id),
            "the resumed projection to finish",
        )
    assert buffered_rows(views_engine, projection.name) == expected_counts(events)
