"""case_board: each row says what the aggregate says, and incremental runs equal a rebuild.

Cases take varied paths through the loop (closed, disputed, handed off, rejected, cancelled, the full
loop with a determination, rework, a reopen and both ratings, a hand-off determined to a department
new to the case). The runner folds them from WL_EVENTS; every row is compared field by field with
`service.case(id)`. Then some cases move on, the runner catches up incrementally, and a reset and full
replay from the stream's start must give exactly the same rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import pytest
from nats.aio.client import Client
from sqlalchemy import Engine, select

from domain.actors import Actor
from domain.clock import ManualClock
from domain.service import CaseService
from infra.event_codec import iso_utc
from projections.case_board import CaseBoard, case_board
from projections.control import reset_projection
from projections.runner import ProjectorRunner, RunnerOptions
from tests.integration.builders import Driver, drive, run_full_loop
from tests.integration.projections.support import (
    RelayLike,
    position,
    run_until,
)
from tests.unit.builders import dept

pytestmark = pytest.mark.asyncio

OPTIONS = RunnerOptions(batch=9, fetch_timeout=0.2)
PATHS: tuple[str, ...] = (
    "reported",
    "accepted",
    "rejected",
    "cancelled",
    "whistled",
    "handed_off",
    "disputed",
)
PATHS += ("in_handling", "handled", "closed", "rated_unsatisfied")


def first_part(service: CaseService, actors: dict[str, Actor]) -> dict[str, UUID]:
    clock: ManualClock = service.clock  # type: ignore[assignment]
    cases = {path: drive(service, clock, actors, path).case_id for path in PATHS}
    cases["full_loop"] = run_full_loop(service, clock, actors).case_id
    new_lead = Driver(service, clock, actors)
    new_lead.report(title="占道经营", community="jianwai_c02", grid=None)
    new_lead.to("disputed")
    new_lead.step(lambda s, i: s.determine_responsibility(i, actors["centre"], "cgw", "背街小巷"))
    cases["determined_new"] = new_lead.case_id
    # Determined to the assisting department, which had already reported in: straight to handling.
    reported_in = Driver(service, clock, actors)
    reported_in.report(title="井盖破损")
    reported_in.to("whistled")
    reported_in.step(lambda s, i: s.report_in(i, dept("zj"), "remote", "已核对"))
    reported_in.step(lambda s, i: s.hand_off(i, dept("cgzf"), "ghzr", "属规划许可问题"))
    reported_in.step(lambda s, i: s.dispute_hand_off(i, dept("ghzr"), "不属本部门"))
    reported_in.step(lambda s, i: s.determine_responsibility(i, actors["centre"], "zj", "住建"))
    cases["determined_reported"] = reported_in.case_id
    return cases


def second_part(service: CaseService, actors: dict[str, Actor], cases: dict[str, UUID]) -> None:
    """Moves some cases on: report-in, determination back to the hand-off's sender, rework."""
    street, centre = actors["street"], actors["centre"]
    service.report_in(cases["whistled"], dept("zj"), "remote")
    service.determine_responsibility(cases["disputed"], centre, "cgzf", "职责清单 CG-001")
    service.report_in(cases["disputed"], dept("cgzf"), "on_site")
    service.send_back_for_rework(cases["handled"], street, "现场仍有残留")
    service.report_in(cases["determined_new"], dept("cgw"), "on_site")
    service.report_handling(cases["determined_new"], dept("cgw"), "resolved")
    service.close_case(cases["determined_new"], street)
    service.rate_by_street(cases["determined_new"], street, {"cgw": 70})
    service.accept(cases["reported"], street, "属实")


def _iso(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment is not None else None


def expected_row(state: dict[str, Any]) -> dict[str, Any]:
    """What the board must say of a case, from the aggregate's own public state."""
    obligations: dict[str, dict[str, Any]] = state["obligations"]
    lead = state["lead_department"]
    duty = obligations.get(lead) if lead else None
    rating = state["resident_rating"] or {}
    handling = state["handling"] or {}
    return {
        "case_id": state["id"],
        "street": state["street"],
        "community": state["community"],
        "grid": state["grid"],
        "title": state["title"],
        "source": state["source"],
        "status": state["status"],
        "stage": state["stage"],
        "duty_item": state["duty_item"],
        "duty_list_version": state["duty_list_version"],
        "urgency": state["urgency"],
        "lead_department": lead,
        "assisting_departments": [
            d for d, o in obligations.items() if o["role"] == "assisting" and o["active"]
        ],
        "reported_at": _iso(state["reported_at"]),
        "lead_reported_in_at": _iso(duty["reported_in_at"]) if duty else None,
        "handled_at": _iso(handling.get("at")),
        "closed_at": _iso(state["closed_at"]),
        "response_deadline": _iso(duty["response_deadline"]) if duty else None,
        "handling_deadline": _iso(state["handling_deadline"]),
        "rework_count": state["rework_count"],
        "round": state["round"],
        "resident_satisfaction": rating.get("satisfaction"),
        "resident_solved": rating.get("solved"),
        "street_scores": state["street_scores"],
        "version": state["version"],
        "updated_at": _iso(state["modified_at"]),
    }


def board(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {row.case_id: dict(row._mapping) for row in conn.execute(select(case_board)).all()}


def assert_board_matches(engine: Engine, service: CaseService, cases: dict[str, UUID]) -> None:
    rows = board(engine)
    assert set(rows) == {str(c) for c in cases.values()}
    for path, case_id in cases.items():
        row = rows[str(case_id)]
        expected = expected_row(service.case(case_id))
        assert {k: row[k] for k in expected} == expected, path


async def test_board_mirrors_the_aggregates_and_incremental_equals_rebuild(
    nc: Client,
    views_engine: Engine,
    event_store: CaseService,
    actors: dict[str, Actor],
) -> None:
    js = nc.jetstream()
    relay = RelayLike(event_store)
    cases = first_part(event_store, actors)
    envelopes = await relay.publish_new(js)
    runner = ProjectorRunner(nc, views_engine, [CaseBoard()], OPTIONS)
    await run_until(runner, views_engine, envelopes[-1].notification_id)
    assert_board_matches(views_engine, event_store, cases)

    rows = board(views_engine)
    full = rows[str(cases["full_loop"])]
    assert (full["status"], full["stage"], full["rework_count"], full["round"]) == (
        "closed",
        "evaluate",
        1,
        2,
    )
    assert (full["resident_satisfaction"], full["resident_solved"]) == ("satisfied", True)
    assert full["street_scores"] == {"cgzf": 85, "zj": 90}
    assert (full["last_event_type"], full["last_notification_id"]) == (
        "Rated",
        max(e.notification_id for e in envelopes if e.aggregate_id == str(cases["full_loop"])),
    )
    assert rows[str(cases["handed_off"])]["lead_department"] == "ghzr"
    assert rows[str(cases["disputed"])]["status"] == "disputed"
    assert rows[str(cases["determined_new"])]["lead_department"] == "cgw"
    determined = rows[str(cases["determined_reported"])]
    assert (determined["status"], determined["lead_department"]) == ("in_handling", "zj")
    assert determined["assisting_departments"] == []
    assert rows[str(cases["rejected"])]["stage"] == "dispatch"
    assert rows[str(cases["reported"])]["accepted_at"] is None
    assert rows[str(cases["accepted"])]["accepted_at"] is not None
    # The duty list's revision is not a case event: counted as ignored, never a row.
    assert position(views_engine, CaseBoard.name).ignored >= 1

    second_part(event_store, actors, cases)
    envelopes += await relay.publish_new(js)
    await run_until(runner, views_engine, envelopes[-1].notification_id)
    assert_board_matches(views_engine, event_store, cases)
    assert board(views_engine)[str(cases["handled"])]["rework_count"] == 1
    incremental = board(views_engine)

    reset_projection(views_engine, CaseBoard())
    assert board(views_engine) == {}
    await run_until(runner, views_engine, envelopes[-1].notification_id)
    assert board(views_engine) == incremental
