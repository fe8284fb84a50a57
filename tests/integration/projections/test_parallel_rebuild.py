"""`projections rebuild --jobs N` builds exactly what a rebuild one projection after another builds.

On SQLite the children rebuild into side files that are then copied in; on PostgreSQL they write
the views database directly. Either way every table, tracking row and recorded skip must come out
as the sequential rebuild leaves them, and no side file may stay behind.
"""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from rich.console import Console
from sqlalchemy import Engine, insert, select

from domain.clock import ManualClock
from domain.service import CaseService
from infra.nats.connection import connect
from infra.nats.server import NatsServer
from infra.nats.streams import ensure_streams
from infra.settings import Settings
from projections import registry
from projections.cli import rebuild
from projections.compare import table_dump
from projections.control import reset_projection
from projections.rebuild import NOT_REBUILDABLE
from projections.views_db import projection_skips, projection_tracking
from tests.e2e.test_read_side_cli import start, stop
from tests.integration.projections.fuzz import fuzz
from tests.integration.projections.support import RelayLike, position

SKIPPED_SEQ = 7  # an operator's earlier `projections skip case_board 7`


def test_parallel_rebuild_equals_a_sequential_one(
    views_settings: Settings,
    views_engine: Engine,
    event_store: CaseService,
    nats_server: NatsServer,
) -> None:
    settings = views_settings.model_copy(update={"nats_url": nats_server.url})
    asyncio.run(publish_history(event_store, nats_server.url))
    with views_engine.begin() as conn:
        conn.execute(
            insert(projection_skips).values(
                name="case_board",
                stream_seq=SKIPPED_SEQ,
                error="test",
                skipped_at=datetime.now(UTC),
            )
        )
    names = [n for n in registry.registered(settings) if n not in NOT_REBUILDABLE]
    projections = registry.select(names, settings)

    output = io.StringIO()
    assert rebuild(settings, [], False, Console(file=output), jobs=1) == 0, output.getvalue()
    sequential = table_dump(views_engine, projections), positions(views_engine)
    assert sum(len(rows) for rows in sequential[0].values()) > 0

    for projection in projections:  # what the parallel rebuild finds must not survive it
        reset_projection(views_engine, projection)
    output = io.StringIO()
    assert rebuild(settings, [], False, Console(file=output), jobs=3) == 0, output.getvalue()
    for name in names:
        assert name in output.getvalue()
    assert (table_dump(views_engine, projections), positions(views_engine)) == sequential
    with views_engine.connect() as conn:
        assert conn.execute(select(projection_skips.c.stream_seq)).scalars().all() == [SKIPPED_SEQ]
    assert not list(Path(settings.var_dir).glob("*.rebuild-*")), "side files left behind"


def test_a_failed_child_does_not_stop_the_others(
    views_settings: Settings,
    views_engine: Engine,
    event_store: CaseService,
    nats_server: NatsServer,
) -> None:
    """linkage is refused (a live `whistleloop project linkage` pulls from its consumer); the other
    four are still rebuilt and, on SQLite, copied in; the command fails naming linkage."""
    settings = views_settings.model_copy(update={"nats_url": nats_server.url})
    asyncio.run(publish_history(event_store, nats_server.url))
    others = registry.select(["case_board", "dept_performance", "deadlines", "audit"], settings)
    assert rebuild(settings, [p.name for p in others], False, Console(file=io.StringIO())) == 0
    sequential = table_dump(views_engine, others)
    for projection in others:
        reset_projection(views_engine, projection)

    live = start(
        {
            "WL_VAR_DIR": str(settings.var_dir),
            "WL_DATABASE_URL": "",
            "WL_VIEWS_DATABASE_URL": settings.views_database_url,
            "WL_NATS_URL": nats_server.url,
        },
        "project",
        "linkage",
    )
    try:
        last = event_store.recorder.max_notification_id() or 0
        wait_for(lambda: position(views_engine, "linkage").last_notification_id >= last)
        output = io.StringIO()
        assert rebuild(settings, [], False, Console(file=output), jobs=3) == 1
    finally:
        stop(live)
    assert "linkage is being projected" in output.getvalue()
    assert table_dump(views_engine, others) == sequential


def wait_for(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the live projector did not catch up"
        time.sleep(0.2)


def positions(engine: Engine) -> dict[str, tuple[Any, ...]]:
    t = projection_tracking.c
    with engine.connect() as conn:
        rows = conn.execute(select(t.name, t.last_stream_seq, t.applied, t.ignored)).all()
    return {row[0]: tuple(row[1:]) for row in rows}


async def publish_history(service: CaseService, url: str) -> None:
    clock: ManualClock = service.clock  # type: ignore[assignment]
    cases: list[UUID] = []
    fuzz(service, clock, random.Random(5), cases, 300)
    nc = await connect(url, name="test-client")
    try:
        await ensure_streams(nc.jetstream())
        assert await RelayLike(service).publish_new(nc.jetstream())
    finally:
        await nc.close()
