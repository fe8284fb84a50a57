"""Every read model folded incrementally equals the same read model rebuilt in one replay.

Seeded random interleavings of commands on many cases (the fuzzer tries legal and illegal commands,
jumps the clock so deadlines pass) are published in chunks; after each chunk a fresh runner with a
random batch size catches up and stops, so batch boundaries fall anywhere. Then every projection is
reset and replayed from the stream's start in large batches, and every table must be identical.
"""

from __future__ import annotations

import random
from pathlib import Path
from uuid import UUID

import pytest
from nats.aio.client import Client
from sqlalchemy import Engine, func, select

from domain.clock import ManualClock
from domain.service import CaseService
from infra.signing import load_or_create_signer
from projections.audit import Audit
from projections.base import Projection
from projections.case_board import CaseBoard
from projections.compare import table_dump
from projections.control import reset_projection
from projections.deadlines import Deadlines
from projections.dept_performance import DAILY_KEYS, DeptPerformance, perf_by, perf_daily
from projections.linkage import Linkage
from projections.runner import ProjectorRunner, RunnerOptions
from tests.integration.projections.fuzz import fuzz
from tests.integration.projections.support import RelayLike, run_until

pytestmark = pytest.mark.asyncio

CHUNKS = 5
COMMANDS_PER_CHUNK = 160


def every_projection(tmp_path: Path) -> list[Projection]:
    """Every projection with tables (dept_feeds has none)."""
    audit = Audit(load_or_create_signer(tmp_path / "audit.pem"), head_every=50)
    return [CaseBoard(), DeptPerformance(), Linkage(), Deadlines(), audit]


async def catch_up(
    nc: Client, engine: Engine, projections: list[Projection], last: int, batch: int
) -> None:
    runner = ProjectorRunner(nc, engine, projections, RunnerOptions(batch=batch, fetch_timeout=0.2))
    await run_until(runner, engine, last)


@pytest.mark.parametrize("seed", [11, 23, 37])
async def test_incremental_projection_equals_a_full_rebuild(
    seed: int, nc: Client, views_engine: Engine, event_store: CaseService, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    clock: ManualClock = event_store.clock  # type: ignore[assignment]
    relay = RelayLike(event_store)
    projections = every_projection(tmp_path)
    js = nc.jetstream()
    cases: list[UUID] = []
    last = 0
    for _ in range(CHUNKS):
        fuzz(event_store, clock, rng, cases, COMMANDS_PER_CHUNK)
        published = await relay.publish_new(js)
        last = published[-1].notification_id if published else last
        await catch_up(nc, views_engine, projections, last, rng.choice((1, 4, 17, 60)))
    incremental = table_dump(views_engine, projections)
    assert sum(len(rows) for rows in incremental.values()) > 0

    for projection in projections:
        reset_projection(views_engine, projection)
    assert all(not rows for rows in table_dump(views_engine, projections).values())
    await catch_up(nc, views_engine, projections, last, 500)

    rebuilt = table_dump(views_engine, projections)
    for table, rows in incremental.items():
        assert rebuilt[table] == rows, f"{table} differs after a rebuild"
    assert_narrow_rollups_sum_the_daily_rows(views_engine)


def assert_narrow_rollups_sum_the_daily_rows(engine: Engine) -> None:
    """Each perf_daily_by_<dimension> is perf_daily summed per (day, dimension)."""
    counters = [c.name for c in perf_daily.c if c.name not in DAILY_KEYS]
    with engine.connect() as conn:
        for dimension, table in perf_by.items():
            keys = [perf_daily.c.day, perf_daily.c[dimension]]
            summed = conn.execute(
                select(*keys, *(func.sum(perf_daily.c[n]) for n in counters))
                .group_by(*keys)
                .order_by(*keys)
            ).all()
            narrow = conn.execute(
                select(table.c.day, table.c[dimension], *(table.c[n] for n in counters)).order_by(
                    table.c.day, table.c[dimension]
                )
            ).all()
            assert [tuple(r) for r in narrow] == [tuple(r) for r in summed], dimension
            assert narrow, dimension
