"""linkage through the runner on real NATS, SQLite and PostgreSQL: the hand-computed cells.

The unit suite's scripted fortnight, cut after case C's first closing: the cells then, the cells at
the end (case C reopened and closed again, D1 and D2 determined, E cancelled), and a reset and full
replay in large batches giving identical tables.
"""

from __future__ import annotations

from uuid import UUID

import pytest
from nats.aio.client import Client
from sqlalchemy import Engine

from domain.actors import Actor
from domain.service import CaseService
from infra.event_codec import EventEnvelope
from projections.control import reset_projection
from projections.linkage import Linkage, linkage_cases, linkage_cells, linkage_members
from projections.runner import ProjectorRunner, RunnerOptions
from tests.integration.projections.support import (
    RelayLike,
    position,
    run_until,
    snapshot,
    table_rows,
)
from tests.unit.test_dept_performance_fold import CUT, run_script
from tests.unit.test_linkage_fold import AT_CUT, FINAL, fold_all, rows_of

pytestmark = pytest.mark.asyncio

SMALL = RunnerOptions(batch=7, fetch_timeout=0.2)
LARGE = RunnerOptions(batch=500, fetch_timeout=0.2)


async def catch_up(
    nc: Client, engine: Engine, options: RunnerOptions, envelopes: list[EventEnvelope]
) -> None:
    runner = ProjectorRunner(nc, engine, [Linkage()], options)
    await run_until(runner, engine, envelopes[-1].notification_id)


async def test_cells_match_by_hand_and_a_rebuild_gives_the_same_tables(
    nc: Client, views_engine: Engine, event_store: CaseService, actors: dict[str, Actor]
) -> None:
    js = nc.jetstream()
    relay = RelayLike(event_store)
    cases: dict[str, UUID] = {}
    run_script(event_store, actors, cases, until=CUT)
    envelopes = await relay.publish_new(js)
    await catch_up(nc, views_engine, SMALL, envelopes)
    assert rows_of(table_rows(views_engine, linkage_cells)) == AT_CUT

    run_script(event_store, actors, cases, after=CUT)
    envelopes += await relay.publish_new(js)
    await catch_up(nc, views_engine, SMALL, envelopes)
    assert rows_of(table_rows(views_engine, linkage_cells)) == FINAL
    assert position(views_engine, Linkage.name).ignored == 1  # the duty list

    states = fold_all(envelopes)[0]
    members = {
        (r["case_id"], r["department"]): r for r in table_rows(views_engine, linkage_members)
    }
    assert members == {
        (case_id, department): member
        for case_id, state in states.items()
        for department, member in state.members.items()
    }
    stored = {row["case_id"]: row for row in table_rows(views_engine, linkage_cases)}
    assert stored == {case_id: state.case for case_id, state in states.items()}
    assert stored[str(cases["E"])]["state"] == "ended"
    # Cells emptied again stay as rows of zeros (E's, the hand-off senders').
    empty = [r for r in table_rows(views_engine, linkage_cells) if r["community"] == ""]
    assert {r["department"] for r in empty} == {"cgzf", "zj"}
    assert all(r["open_cases"] == r["closed_cases"] == r["responded"] == 0 for r in empty)

    incremental = snapshot(views_engine, Linkage.tables)
    reset_projection(views_engine, Linkage())
    await catch_up(nc, views_engine, LARGE, envelopes)
    assert snapshot(views_engine, Linkage.tables) == incremental
