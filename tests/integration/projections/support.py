"""Helpers the projection tests share: publishing as the relay does, running a runner, waiting.

`publish_envelopes` is a stand-in for `infra.relay` (written in parallel): the same envelopes, subjects,
headers and bodies, published one by one in notification order with the ack awaited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from nats.js import JetStreamContext
from sqlalchemy import Engine, Table, select

from domain.service import CaseService
from infra.event_codec import DISTRICT_TOKEN, EventEnvelope
from projections import tracking
from projections.runner import ProjectorRunner
from projections.tracking import Position


class RelayLike:
    """Turns a store's notifications into envelopes exactly as the relay will (street per case)."""

    def __init__(self, service: CaseService) -> None:
        self.service = service
        self.last = 0
        self.streets: dict[str, str] = {}

    def new_envelopes(self) -> list[EventEnvelope]:
        found = []
        while batch := list(
            self.service.recorder.select_notifications(
                start=self.last, limit=1000, inclusive_of_start=False
            )
        ):
            for n in batch:
                found.append(
                    EventEnvelope.from_notification(n, self.service.mapper, self._street(n))
                )
            self.last = batch[-1].id
        return found

    def _street(self, notification: object) -> str:
        topic: str = notification.topic  # type: ignore[attr-defined]
        if not topic.startswith("whistleloop.case."):
            return DISTRICT_TOKEN
        case_id = str(notification.originator_id)  # type: ignore[attr-defined]
        if case_id not in self.streets:
            self.streets[case_id] = str(self.service.case(notification.originator_id)["street"])  # type: ignore[attr-defined]
        return self.streets[case_id]

    async def publish_new(self, js: JetStreamContext) -> list[EventEnvelope]:
        envelopes = self.new_envelopes()
        await publish_envelopes(js, envelopes)
        return envelopes


async def publish_envelopes(js: JetStreamContext, envelopes: Iterable[EventEnvelope]) -> list[int]:
    """Publishes in order, each ack awaited; returns the stream sequences."""
    seqs = []
    for envelope in envelopes:
        ack = await js.publish(
            envelope.subject, envelope.body(), headers=envelope.headers(), timeout=10
        )
        seqs.append(ack.seq)
    return seqs


@asynccontextmanager
async def running(runner: ProjectorRunner) -> AsyncIterator[asyncio.Event]:
    """Runs the runner in the background; stops it gracefully (bounded) on the way out."""
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Polls `check` until it holds; fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


def position(engine: Engine, name: str) -> Position:
    with engine.connect() as conn:
        return tracking.read_position(conn, name)


def status(engine: Engine, name: str) -> tracking.Status | None:
    with engine.connect() as conn:
        return tracking.read_status(conn, name)


def reached(engine: Engine, name: str, notification_id: int) -> Callable[[], bool]:
    return lambda: position(engine, name).last_notification_id >= notification_id


def halted(engine: Engine, name: str) -> Callable[[], bool]:
    def check() -> bool:
        row = status(engine, name)
        return row is not None and row.state == tracking.HALTED

    return check


async def run_until(runner: ProjectorRunner, engine: Engine, last: int) -> None:
    """Runs the runner until each of its projections has applied up to notification `last`."""
    async with running(runner):
        for projection in runner.projections:
            await eventually(reached(engine, projection.name, last), f"{projection.name} at {last}")


def table_rows(engine: Engine, table: Table) -> list[dict[str, Any]]:
    """Every row of a read-model table, in primary-key order."""
    with engine.connect() as conn:
        query = select(table).order_by(*table.primary_key.columns)
        return [dict(row._mapping) for row in conn.execute(query)]


def snapshot(engine: Engine, tables: Iterable[Table]) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows as sorted tuples: what a rebuild must reproduce exactly."""
    return {
        table.name: sorted(tuple(row.values()) for row in table_rows(engine, table))
        for table in tables
    }
