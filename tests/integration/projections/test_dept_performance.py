"""dept_performance through the runner on real NATS, SQLite and PostgreSQL: the hand-computed counts.

The unit suite's scripted fortnight is recorded in a real event store and published as the relay
does. The first part is folded in small batches (so case rows are read back from the database
between batches) and must equal the pure fold; after the rest, `perf_daily` must hold exactly the
hand-computed counters. A reset and full replay in large batches must then give identical tables.
"""

from __future__ import annotations

from uuid import UUID

import pytest
from nats.aio.client import Client
from sqlalchemy import Connection, Engine

from domain.actors import Actor
from domain.service import CaseService
from infra.event_codec import EventEnvelope
from projections.base import TransientError
from projections.control import reset_projection
from projections.dept_performance import DeptPerformance, perf_cases, perf_daily, perf_obligations
from projections.runner import ProjectorRunner, RunnerOptions
from tests.integration.projections.support import (
    RelayLike,
    position,
    run_until,
    snapshot,
    table_rows,
)
from tests.unit.test_dept_performance_fold import (
    CUT,
    EXPECTED,
    delta_rows,
    fold_all,
    nonzero,
    run_script,
)

pytestmark = pytest.mark.asyncio

SMALL = RunnerOptions(batch=9, fetch_timeout=0.2)
LARGE = RunnerOptions(batch=500, fetch_timeout=0.2)


async def catch_up(
    nc: Client,
    engine: Engine,
    options: RunnerOptions,
    envelopes: list[EventEnvelope],
    projection: DeptPerformance | None = None,
) -> None:
    runner = ProjectorRunner(nc, engine, [projection or DeptPerformance()], options)
    await run_until(runner, engine, envelopes[-1].notification_id)


async def test_counts_match_by_hand_and_a_rebuild_gives_the_same_tables(
    nc: Client, views_engine: Engine, event_store: CaseService, actors: dict[str, Actor]
) -> None:
    js = nc.jetstream()
    relay = RelayLike(event_store)
    cases: dict[str, UUID] = {}
    run_script(event_store, actors, cases, until=CUT)
    envelopes = await relay.publish_new(js)
    await catch_up(nc, views_engine, SMALL, envelopes)
    daily = nonzero(table_rows(views_engine, perf_daily))
    assert daily == nonzero(delta_rows(fold_all(envelopes)[1]))
    assert daily[("jianwai_c03", "2026-03-05", "cgzf")]["sent_back"] == 1

    run_script(event_store, actors, cases, after=CUT)
    envelopes += await relay.publish_new(js)
    await catch_up(nc, views_engine, SMALL, envelopes)
    assert nonzero(table_rows(views_engine, perf_daily)) == EXPECTED
    # The duty list's publication is not a case event: counted as ignored.
    assert position(views_engine, DeptPerformance.name).ignored == 1

    states = fold_all(envelopes)[0]
    stored_cases = {row["case_id"]: row for row in table_rows(views_engine, perf_cases)}
    assert stored_cases == {case_id: state.case for case_id, state in states.items()}
    stored_obligations = {
        (row["case_id"], row["department"]): row
        for row in table_rows(views_engine, perf_obligations)
    }
    assert stored_obligations == {
        (case_id, department): duty
        for case_id, state in states.items()
        for department, duty in state.obligations.items()
    }
    late = stored_obligations[(str(cases["B"]), "cgzf")]
    assert (late["start_day"], late["response_counted"], late["response_seconds"]) == (
        "2026-03-02",
        True,
        27 * 3600.0,
    )

    incremental = snapshot(views_engine, DeptPerformance.tables)
    reset_projection(views_engine, DeptPerformance())
    assert all(
        not table_rows for table_rows in snapshot(views_engine, DeptPerformance.tables).values()
    )
    await catch_up(nc, views_engine, LARGE, envelopes)
    assert snapshot(views_engine, DeptPerformance.tables) == incremental


class LostCommits(DeptPerformance):
    """Some batches fail after their bulk write (the connection drops before the commit).

    The runner retries them; the case states folded in the failed try must not be trusted then,
    or the retry would see every event as already folded in and add nothing.
    """

    def __init__(self, failing: set[int]) -> None:
        super().__init__()
        self.failing = failing
        self.calls = 0

    def end_batch(self, conn: Connection) -> None:
        super().end_batch(conn)
        self.calls += 1
        if self.calls in self.failing:
            raise TransientError("simulated outage before the commit")


async def test_a_batch_retried_after_a_lost_commit_counts_once(
    nc: Client, views_engine: Engine, event_store: CaseService, actors: dict[str, Actor]
) -> None:
    run_script(event_store, actors, {})
    envelopes = await RelayLike(event_store).publish_new(nc.jetstream())
    projection = LostCommits(failing={2, 5, 6})
    await catch_up(nc, views_engine, SMALL, envelopes, projection)
    assert projection.calls > 6
    assert nonzero(table_rows(views_engine, perf_daily)) == EXPECTED
