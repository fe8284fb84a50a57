"""dept_feeds: each department's subjects hold exactly the events of the cases it is or was on.

Three cases move through the loop interleaved: A is whistled (lead cgzf, assisting zj), handed off to
ghzr (which joins late), disputed and determined back to cgzf, then handled and closed; B is whistled
under another item (cgzf + scjg), handed to ga, disputed and determined to cgw (new to the case); C is
only accepted. sthj is never involved.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from uuid import UUID

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy import Engine, select

from domain.actors import Actor
from domain.service import CaseService
from infra.event_codec import HEADER_DEPT, HEADER_MSG_ID, EventEnvelope
from infra.nats.server import NatsServer
from infra.nats.streams import DEPT_STREAM, EVENTS_STREAM
from infra.settings import Settings
from projections.base import read_messages
from projections.cli import projections_status
from projections.control import reset_projection
from projections.dept_feeds import DeptFeeds, dept_case, ensure_department_consumers
from projections.runner import ProjectorRunner, RunnerOptions
from tests.integration.builders import Driver
from tests.integration.projections.support import RelayLike, eventually, reached, running
from tests.unit.builders import dept

pytestmark = pytest.mark.asyncio

OPTIONS = RunnerOptions(batch=7, fetch_timeout=0.2)  # small batches: joins and events straddle them
DEPARTMENTS = ("cgzf", "zj", "ghzr", "scjg", "ga", "cgw", "sthj")


def first_part(service: CaseService, actors: dict[str, Actor]) -> dict[str, UUID]:
    a, b, c = (Driver(service, service.clock, actors) for _ in range(3))  # type: ignore[arg-type]
    street, centre = actors["street"], actors["centre"]
    a.report()
    b.report(title="占道经营")
    a.step(lambda s, i: s.accept(i, street, "属实"))
    b.step(lambda s, i: s.accept(i, street, "属实"))
    a.step(lambda s, i: s.whistle(i, street, lead="cgzf", assisting=("zj",), duty_item="CG-001"))
    c.report(title="噪音扰民")
    b.step(lambda s, i: s.whistle(i, street, lead="cgzf", assisting=("scjg",), duty_item="CG-002"))
    a.step(lambda s, i: s.report_in(i, dept("zj"), "remote", "已核对"))
    c.step(lambda s, i: s.accept(i, street, "属实"))
    a.step(lambda s, i: s.hand_off(i, dept("cgzf"), "ghzr", "属规划许可问题"))
    b.step(lambda s, i: s.hand_off(i, dept("cgzf"), "ga", "涉及治安"))
    a.step(lambda s, i: s.dispute_hand_off(i, dept("ghzr"), "违建查处属城管执法"))
    b.step(lambda s, i: s.dispute_hand_off(i, dept("ga"), "不属治安"))
    b.step(lambda s, i: s.determine_responsibility(i, centre, "cgw", "背街小巷整治"))
    a.step(lambda s, i: s.determine_responsibility(i, centre, "cgzf", "职责清单 CG-001"))
    return {"A": a.case_id, "B": b.case_id, "C": c.case_id}


def second_part(service: CaseService, actors: dict[str, Actor], cases: dict[str, UUID]) -> None:
    street = actors["street"]
    service.report_in(cases["A"], dept("cgzf"), "on_site")
    service.report_in(cases["B"], dept("cgw"), "on_site")
    service.report_handling(cases["A"], dept("cgzf"), "resolved")
    service.close_case(cases["A"], street, "已拆除")


async def dept_feed(js: JetStreamContext, code: str) -> list[tuple[str, dict[str, str], bytes]]:
    return [
        (m.subject, m.headers, m.data)
        for m in await read_messages(js, DEPT_STREAM, f"wl.dept.{code}.>")
    ]


async def assert_feeds(
    js: JetStreamContext,
    envelopes: list[EventEnvelope],
    involved: dict[str, set[str]],
    cases: dict[str, UUID],
) -> None:
    by_case: dict[str, list[EventEnvelope]] = defaultdict(list)
    for e in envelopes:
        by_case[e.aggregate_id].append(e)
    for code in DEPARTMENTS:
        feed = await dept_feed(js, code)
        got: dict[str, list[int]] = defaultdict(list)
        for subject, headers, body in feed:
            envelope = EventEnvelope.from_message(
                subject.replace(f"wl.dept.{code}.", "wl.ev.jianwai.", 1), headers, body
            )
            assert subject == f"wl.dept.{code}.{envelope.aggregate_id}.{envelope.event_type}"
            assert headers[HEADER_DEPT] == code
            assert headers[HEADER_MSG_ID] == f"dept:{code}:{envelope.notification_id}"
            got[envelope.aggregate_id].append(envelope.notification_id)
        expected = {
            str(cases[name]): [e.notification_id for e in by_case[str(cases[name])]]
            for name in involved.get(code, set())
        }
        assert dict(got) == expected, f"feed of {code}"  # whole cases, in order, once each


INVOLVED = {
    "cgzf": {"A", "B"},
    "zj": {"A"},
    "ghzr": {"A"},
    "scjg": {"B"},
    "ga": {"B"},
    "cgw": {"B"},
}


async def test_each_department_gets_whole_cases_it_is_on_once_in_order(
    nc: Client,
    views_engine: Engine,
    event_store: CaseService,
    actors: dict[str, Actor],
) -> None:
    js = nc.jetstream()
    await ensure_department_consumers(js, DEPARTMENTS)
    await ensure_department_consumers(js, DEPARTMENTS)  # idempotent
    relay = RelayLike(event_store)
    cases = first_part(event_store, actors)
    envelopes = await relay.publish_new(js)

    runner = ProjectorRunner(nc, views_engine, [DeptFeeds()], OPTIONS)
    async with running(runner):
        await eventually(
            reached(views_engine, "dept_feeds", envelopes[-1].notification_id),
            "dept_feeds to catch up",
        )
    await assert_feeds(js, envelopes, INVOLVED, cases)
    with views_engine.connect() as conn:
        rows = conn.execute(select(dept_case.c.case_id, dept_case.c.dept, dept_case.c.role)).all()
    assert {(r.dept, r.role) for r in rows if r.case_id == str(cases["B"])} == {
        ("cgzf", "lead"),
        ("scjg", "assisting"),
        ("ga", "handed_to"),
        ("cgw", "determined"),
    }

    # A restart picks up where it left off: new events arrive once, nothing is repeated.
    second_part(event_store, actors, cases)
    envelopes += await relay.publish_new(js)
    async with running(runner):
        await eventually(
            reached(views_engine, "dept_feeds", envelopes[-1].notification_id),
            "dept_feeds to catch up after a restart",
        )
    await assert_feeds(js, envelopes, INVOLVED, cases)

    # A crash after publishing but before the commit loses the commit: re-applying everything
    # re-publishes every message with the same Nats-Msg-Id, and WL_DEPT keeps one of each.
    stored = (await js.stream_info(DEPT_STREAM)).state.messages
    reset_projection(views_engine, DeptFeeds())
    async with running(runner):
        await eventually(
            reached(views_engine, "dept_feeds", envelopes[-1].notification_id),
            "dept_feeds to re-apply everything",
        )
    assert (await js.stream_info(DEPT_STREAM)).state.messages == stored
    await assert_feeds(js, envelopes, INVOLVED, cases)

    # A department's durable consumer serves exactly its feed.
    sub = await js.pull_subscribe_bind("dept_zj", stream=DEPT_STREAM)
    fetched = await sub.fetch(100, timeout=2)
    assert [m.data for m in fetched] == [d for _s, _h, d in await dept_feed(js, "zj")]
    assert (await js.stream_info(EVENTS_STREAM)).state.messages == len(envelopes)


@pytest.mark.parametrize("views_settings", ["sqlite"], indirect=True)
async def test_whistleloop_project_runs_dept_feeds_until_sigterm(
    nats_server: NatsServer,
    nc: Client,
    views_settings: Settings,
    views_engine: Engine,
    event_store: CaseService,
    actors: dict[str, Actor],
) -> None:
    js = nc.jetstream()
    first_part(event_store, actors)
    envelopes = await RelayLike(event_store).publish_new(js)
    env = {**os.environ, "WL_NATS_URL": nats_server.url, "WL_VAR_DIR": str(views_settings.var_dir)}
    command = [str(Path(sys.executable).with_name("whistleloop")), "project", "dept_feeds"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        await eventually(
            reached(views_engine, "dept_feeds", envelopes[-1].notification_id),
            "the projector process to catch up",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    # Every department of the reference data has its durable consumer.
    assert (await js.consumer_info(DEPT_STREAM, "dept_sthj")).config.filter_subject == (
        "wl.dept.sthj.>"
    )
    [row] = projections_status(views_settings)
    assert (row["name"], row["state"]) == ("dept_feeds", "running")
    assert row["last_notification_id"] == envelopes[-1].notification_id
