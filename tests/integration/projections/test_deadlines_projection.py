"""deadlines: a row exactly while `Case.due()` gives a deadline, with the flags the aggregate recorded.

Cases ("lanes") take the paths that open, close, move and revive deadlines: whistle, report-in,
hand-off, dispute (the disputing department's clock pauses), determination (back to the sender, to a
department new to the case, to one that had already reported in), handling report, rework, close,
reopen (an assisting department's unanswered response comes back with the flags it earned), cancel,
reject, and the SLA clock's own events (white, miss, yellow, escalation). The expected rows are
computed from the aggregates (`Case.due`, their supervision/miss/escalation keys) and the start of each
deadline from the events that set it, never from the projection's code.

First the fold is checked after every single event (no NATS); then the lanes advance in lockstep
while the real runner folds them from WL_EVENTS into SQLite and PostgreSQL views, compared after every
round; finally a reset and full replay must give the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

import pytest
from nats.aio.client import Client
from sqlalchemy import Engine, select

from domain.actors import Actor
from domain.case import Case
from domain.clock import ManualClock
from domain.service import CaseService
from infra.event_codec import iso_utc
from infra.sla import escalate_at, white_at
from projections.base import ApplyContext
from projections.control import reset_projection
from projections.deadlines import Deadlines, State, deadlines, fold, open_rows, reported_state
from projections.runner import ProjectorRunner, RunnerOptions
from tests.integration.builders import report_case
from tests.integration.projections.support import (
    RelayLike,
    eventually,
    position,
    reached,
    run_until,
    running,
)
from tests.unit.builders import ASSISTING, ITEM, LEAD, RECEIVER, dept

OPTIONS = RunnerOptions(batch=7, fetch_timeout=0.1)
STEP = timedelta(minutes=5)
A = dict[str, Actor]
Command = Callable[[CaseService, UUID, A], object]


@dataclass(frozen=True)
class Step:
    what: str
    command: Command
    wait: timedelta = STEP


def whistle(urgency: str = "normal") -> Step:
    return Step(
        f"whistle ({urgency})",
        lambda s, c, a: s.whistle(
            c, a["street"], lead=LEAD, assisting=(ASSISTING,), duty_item=ITEM, urgency=urgency
        ),
    )


def report_in(department: str) -> Step:
    return Step(
        f"{department} reports in", lambda s, c, a: s.report_in(c, dept(department), "remote")
    )


def hand_off(to: str = RECEIVER, by: str = LEAD) -> Step:
    return Step(
        f"{by} hands off to {to}", lambda s, c, a: s.hand_off(c, dept(by), to, "非本部门职责")
    )


def dispute(by: str = RECEIVER) -> Step:
    return Step(f"{by} disputes", lambda s, c, a: s.dispute_hand_off(c, dept(by), "不属本部门"))


def determine(department: str) -> Step:
    return Step(
        f"determined: {department}",
        lambda s, c, a: s.determine_responsibility(c, a["centre"], department, "职责清单"),
    )


def handled(by: str = LEAD) -> Step:
    return Step("handling reported", lambda s, c, a: s.report_handling(c, dept(by), "resolved"))


def supervise(colour: str, department: str, obligation: str) -> Step:
    return Step(
        f"{colour} {department} {obligation}",
        lambda s, c, a: s.issue_supervision(c, a["system"], colour, department, "督办", obligation),
    )


def missed(department: str, obligation: str, wait: timedelta) -> Step:
    return Step(
        f"missed {department} {obligation}",
        lambda s, c, a: s.record_deadline_missed(c, a["system"], department, obligation),
        wait,
    )


ACCEPT = Step("accept", lambda s, c, a: s.accept(c, a["street"], "属实"))
REWORK = Step("rework", lambda s, c, a: s.send_back_for_rework(c, a["street"], "仍有残留"))
CLOSE = Step("close", lambda s, c, a: s.close_case(c, a["street"], "已核查"))
CANCEL = Step("cancel", lambda s, c, a: s.cancel(c, a["street"], "来电人撤诉"))
REOPEN = Step("reopen", lambda s, c, a: s.reopen(c, a["street"], "问题复发"))
UNSATISFIED = Step(
    "resident unsatisfied",
    lambda s, c, a: s.rate_by_resident(c, a["resident"], "unsatisfied", False),
)
RESIDENT_REOPENS = Step("resident reopens", lambda s, c, a: s.reopen(c, a["resident"], "又复发了"))
ESCALATE = Step(
    "escalate", lambda s, c, a: s.escalate_to_district(c, a["system"], LEAD, "超期未报到")
)

LANES: dict[str, list[Step]] = {
    "full": [
        ACCEPT,
        whistle(),
        supervise("white", LEAD, "response"),
        report_in(ASSISTING),
        missed(LEAD, "response", timedelta(hours=25)),
        supervise("yellow", LEAD, "response"),
        ESCALATE,
        hand_off(),
        dispute(),
        determine(LEAD),
        supervise("white", LEAD, "handling"),
        report_in(LEAD),
        handled(),
        REWORK,
        handled(),
        CLOSE,
        UNSATISFIED,
        RESIDENT_REOPENS,
        handled(),
        CLOSE,
    ],
    "revived": [
        ACCEPT,
        whistle(),
        report_in(LEAD),
        missed(ASSISTING, "response", timedelta(hours=25)),
        supervise("yellow", ASSISTING, "response"),
        handled(),
        CLOSE,
        REOPEN,
        report_in(ASSISTING),
        CANCEL,
    ],
    "determined_new": [
        ACCEPT,
        whistle(),
        hand_off(),
        dispute(),
        determine("cgw"),
        report_in("cgw"),
    ],
    "determined_reported": [
        ACCEPT,
        whistle(),
        report_in(ASSISTING),
        hand_off(),
        dispute(),
        determine(ASSISTING),
        handled(ASSISTING),
    ],
    "handed_on": [ACCEPT, whistle(), hand_off(), hand_off("cgw", by=RECEIVER), report_in("cgw")],
    "cancelled": [ACCEPT, whistle("urgent"), CANCEL],
    "rejected": [
        Step("reject", lambda s, c, a: s.reject(c, a["street"], "not_public", "私人纠纷"))
    ],
}

FLAGS = ("white_issued", "missed_recorded", "yellow_issued", "red_issued", "escalated")


def report_lanes(service: CaseService, actors: A) -> dict[str, UUID]:
    return {lane: report_case(service, actors, title=f"{lane} 案件") for lane in LANES}


def run_step(service: CaseService, actors: A, case_id: UUID, step: Step) -> None:
    clock = service.clock
    assert isinstance(clock, ManualClock)
    clock.advance(step.wait)
    step.command(service, case_id, actors)


# --- what the aggregates say ----------------------------------------------------------------------


def started(case: Case, events: list[Any], department: str, obligation: str, due: datetime) -> str:
    """When the deadline `due` was set: the latest event that gave it to this department."""
    for event in reversed(events):
        name = type(event).__name__
        if obligation == "handling" and getattr(event, "handling_deadline", None) == due:
            return iso_utc(event.timestamp)
        if obligation == "response" and getattr(event, "response_deadline", None) == due:
            named = {
                "Whistled": [
                    getattr(event, "lead_department", ""),
                    *getattr(event, "assisting_departments", []),
                ],
                "HandedOff": [getattr(event, "to_department", "")],
                "ResponsibilityDetermined": [getattr(event, "department", "")],
            }.get(name, [])
            if department in named:
                return iso_utc(event.timestamp)
    raise AssertionError(f"no event set {obligation} {department} {due}")


def expected_rows(
    service: CaseService, cases: dict[str, UUID]
) -> dict[tuple[str, str, str], dict[str, Any]]:
    rows = {}
    for case_id in cases.values():
        case: object = service.repository.get(case_id)
        assert isinstance(case, Case)
        events = list(service.repository.event_store.get(case_id))
        for department in case.obligations:
            for obligation in ("response", "handling"):
                due = case.due(department, obligation)
                if due is None:
                    continue
                response = obligation == "response"
                start = started(case, events, department, obligation, due)
                key = (str(case_id), department, obligation)
                rows[key] = {
                    "street": case.street,
                    "community": case.community or "",
                    "duty_item": case.duty_item or "",
                    "urgency": case.urgency,
                    "started_at": start,
                    "due_at": iso_utc(due),
                    "white_at": iso_utc(white_at(datetime.fromisoformat(start), due)),
                    "escalate_at": iso_utc(escalate_at(datetime.fromisoformat(start), due))
                    if response
                    else None,
                    "white_issued": case.supervision_key("white", department, obligation)
                    in case.supervisions,
                    "yellow_issued": case.supervision_key("yellow", department, obligation)
                    in case.supervisions,
                    "red_issued": case.supervision_key("red", department, obligation)
                    in case.supervisions,
                    "missed_recorded": f"{obligation}:{department}:{due.isoformat()}"
                    in case.missed,
                    "escalated": response and case.escalation_key(department) in case.escalated,
                }
    return rows


def without_key(
    rows: dict[tuple[str, str, str], dict[str, Any]],
) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        key: {k: v for k, v in row.items() if k not in ("case_id", "department", "obligation")}
        for key, row in rows.items()
    }


def table(engine: Engine) -> dict[tuple[str, str, str], dict[str, Any]]:
    with engine.connect() as conn:
        found = conn.execute(select(deadlines)).all()
    return without_key({(r.case_id, r.department, r.obligation): dict(r._mapping) for r in found})


# --- the fold, event by event ---------------------------------------------------------------------


def test_the_fold_gives_case_due_after_every_event(event_store: CaseService, actors: A) -> None:
    relay = RelayLike(event_store)
    cases = report_lanes(event_store, actors)
    states: dict[str, State] = {}
    seen_flags: set[str] = set()

    def check(after: str) -> None:
        for envelope in relay.new_envelopes():
            if envelope.event_type == "CaseReported":
                states[envelope.aggregate_id] = reported_state(envelope)
            elif envelope.aggregate_id in states:
                fold(states[envelope.aggregate_id], envelope)
        rows = {k: r for c, s in states.items() for k, r in open_rows(c, s).items()}
        assert without_key(rows) == expected_rows(event_store, cases), after
        seen_flags.update(f for row in rows.values() for f in FLAGS if row[f])

    check("reports")
    for lane, steps in LANES.items():
        for step in steps:
            run_step(event_store, actors, cases[lane], step)
            check(f"{lane}: {step.what}")
    assert seen_flags == {"white_issued", "missed_recorded", "yellow_issued", "escalated"}


# --- through the runner ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_rows_through_the_runner_and_a_replay_equals_the_incremental_table(
    nc: Client, views_engine: Engine, event_store: CaseService, actors: A
) -> None:
    js = nc.jetstream()
    relay = RelayLike(event_store)
    runner = ProjectorRunner(nc, views_engine, [Deadlines()], OPTIONS)
    cases = report_lanes(event_store, actors)
    envelopes = await relay.publish_new(js)
    shapes: set[int] = set()
    async with running(runner):
        for round_ in range(max(len(steps) for steps in LANES.values())):
            for lane, steps in LANES.items():
                if round_ < len(steps):
                    run_step(event_store, actors, cases[lane], steps[round_])
            envelopes += await relay.publish_new(js)
            last = envelopes[-1].notification_id
            await eventually(reached(views_engine, Deadlines.name, last), f"round {round_}")
            rows = table(views_engine)
            assert rows == expected_rows(event_store, cases), f"round {round_}"
            shapes.add(len(rows))
    assert len(shapes) > 3  # rows came and went
    # The duty list's publication is no case event: ignored, never a row.
    assert position(views_engine, Deadlines.name).ignored >= 1

    incremental = table(views_engine)
    reset_projection(views_engine, Deadlines())
    assert table(views_engine) == {}
    await run_until(runner, views_engine, envelopes[-1].notification_id)
    assert table(views_engine) == incremental


def test_a_batch_per_event_gives_the_right_rows_at_every_step(
    views_engine: Engine, event_store: CaseService, actors: A
) -> None:
    """Outside the runner (no tracking row, so no cache kept between batches), batch by batch."""
    relay = RelayLike(event_store)
    cases = report_lanes(event_store, actors)
    projection = Deadlines()
    no_nats = cast(ApplyContext, None)  # deadlines never publishes nor reads streams

    def apply_new() -> None:
        for envelope in relay.new_envelopes():
            with views_engine.begin() as conn:
                projection.begin_batch(conn)
                projection.apply(conn, envelope, no_nats)
                projection.end_batch(conn)

    apply_new()
    for lane, steps in LANES.items():
        for step in steps:
            run_step(event_store, actors, cases[lane], step)
            apply_new()
            assert table(views_engine) == expected_rows(event_store, cases), step.what
