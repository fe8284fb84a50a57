"""An event type a projection does not know is recorded as ignored, never a halt.

A newer writer may store event types this version has never heard of (a future `Case` event, say).
They arrive on WL_EVENTS well-formed; every projection must let them pass, count them as ignored and
go on with the events after them. The audit is the exception by design: it hashes every event.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from nats.aio.client import Client
from sqlalchemy import Engine, func, select

from infra.event_codec import EventEnvelope
from infra.signing import load_or_create_signer
from projections import tracking
from projections.audit import Audit, audit_log
from projections.base import Projection
from projections.case_board import CaseBoard
from projections.deadlines import Deadlines
from projections.dept_performance import DeptPerformance
from projections.linkage import Linkage
from projections.runner import ProjectorRunner, RunnerOptions
from tests.integration.projections.support import (
    eventually,
    position,
    publish_envelopes,
    reached,
    running,
    status,
)

pytestmark = pytest.mark.asyncio


def from_the_future(case_events: list[EventEnvelope], notification_id: int) -> EventEnvelope:
    """A well-formed next event of a case, of a type no projection of this version knows."""
    return replace(
        case_events[-1],
        notification_id=notification_id,
        topic="whistleloop.case.HandledByDrone",
        version=case_events[-1].version + 1,
        payload={"drone": "UAV-7", "note": "a newer writer's event"},
    )


async def test_every_projection_ignores_an_event_type_it_does_not_know(
    nc: Client, views_engine: Engine, corpus: list[EventEnvelope], tmp_path: Path
) -> None:
    before, after = corpus[:200], corpus[200:400]
    finished = {e.aggregate_id for e in before} - {e.aggregate_id for e in after}
    case_id = sorted(finished)[0]  # a case whose events all come before: the next one is new
    future = from_the_future(
        [e for e in before if e.aggregate_id == case_id], before[-1].notification_id + 1
    )
    after = [replace(e, notification_id=e.notification_id + 1) for e in after]
    await publish_envelopes(nc.jetstream(), [*before, future, *after])
    audit = Audit(load_or_create_signer(tmp_path / "audit.pem"))
    projections: list[Projection] = [CaseBoard(), DeptPerformance(), Linkage(), Deadlines(), audit]
    runner = ProjectorRunner(nc, views_engine, projections, RunnerOptions(batch=37))
    async with running(runner):
        for p in projections:
            await eventually(reached(views_engine, p.name, after[-1].notification_id), p.name)

    for p in projections:
        row = status(views_engine, p.name)
        assert row is not None
        assert row.state == tracking.RUNNING, (p.name, row.error)
    # Each knows every case event type of this version, so it ignores the duty list's events
    # and the future event: nothing else.
    duty_list = sum(1 for e in [*before, *after] if e.aggregate != "case")
    for p in projections[:-1]:
        assert position(views_engine, p.name).ignored == duty_list + 1, p.name
    assert position(views_engine, "audit").ignored == 0  # the audit keeps every event
    with views_engine.connect() as conn:
        kept = conn.execute(
            select(func.count()).where(audit_log.c.notification_id == future.notification_id)
        ).scalar_one()
    assert kept == 1
