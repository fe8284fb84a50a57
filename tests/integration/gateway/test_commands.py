"""Every command over REST does what the domain says, as the caller's actor, on each kind of store."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from tests.integration.gateway.conftest import Gateway
from tests.integration.gateway.rest import (
    CASES,
    REPORT,
    RESIDENT,
    STEP,
    command,
    full_loop,
    report,
)

pytestmark = pytest.mark.asyncio


def event_types(gw: Gateway, case_id: str) -> list[str]:
    return [e["type"] for e in gw.service.history(UUID(case_id))]


def case_state(gw: Gateway, case_id: str) -> dict[str, Any]:
    return gw.service.case(UUID(case_id))


async def test_every_command_lands_in_the_store(gateway_any_store: Gateway) -> None:
    gw = gateway_any_store
    c = gw.client
    street, centre = gw.auth("street", street="jianwai"), gw.auth("command_centre")
    inspector, resident = gw.auth("inspector"), gw.auth("resident", subject=RESIDENT)
    cgzf, ghzr = gw.auth("department", dept="cgzf"), gw.auth("department", dept="ghzr")
    zj = gw.auth("department", dept="zj")

    short = await full_loop(gw)
    state = case_state(gw, short)
    assert state["status"] == "closed"
    assert state["resident_rating"] == {"satisfaction": "satisfied", "solved": True}
    assert state["street_scores"] == {"cgzf": 85, "ghzr": 90}

    # The long way round: every other command, each by the role that owns it.
    case_id = await report(c, resident)
    steps: list[tuple[dict[str, str], str, dict[str, Any]]] = [
        (street, "accept", {}),
        (street, "whistle", {"lead": "cgzf", "assisting": ["zj"], "duty_item": "CG-001"}),
        (zj, "report-in", {"mode": "remote"}),
        (inspector, "supervise", {"colour": "yellow", "department": "cgzf", "reason": "未报到"}),
        (street, "escalate", {"department": "cgzf", "reason": "超期未报到，上报区级"}),
        (cgzf, "hand-off", {"to_department": "ghzr", "reason": "属规划许可问题"}),
        (ghzr, "dispute", {"reason": "违建查处属城管执法职责"}),
        (centre, "determine", {"department": "cgzf", "basis": "职责清单 CG-001"}),
        (cgzf, "report-in", {"mode": "on_site"}),
        (street, "consult", {"departments": ["cgzf", "zj"], "plan": "联合拆除"}),
        (cgzf, "report-handling", {"result": "resolved"}),
        (street, "rework", {"reason": "现场仍有残留"}),
        (cgzf, "report-handling", {"result": "resolved"}),
        (street, "close", {}),
        (
            resident,
            "rate",
            {"satisfaction": "unsatisfied", "solved": False, "comment": "又搭起来了"},
        ),
        (resident, "reopen", {"reason": "违建复发"}),
        (cgzf, "report-handling", {"result": "partly_resolved", "note": "主体已拆除"}),
        (street, "close", {"note": "复核"}),
    ]
    for version, (headers, action, body) in enumerate(steps, start=2):
        gw.clock.advance(STEP)
        assert await command(c, headers, case_id, action, **body) == version
    assert event_types(gw, case_id) == [
        "CaseReported", "CaseAccepted", "Whistled", "ReportedIn", "SupervisionIssued",
        "EscalatedToDistrict", "HandedOff", "HandOffDisputed", "ResponsibilityDetermined",
        "ReportedIn", "ConsultationHeld", "HandlingReported", "SentBackForRework",
        "HandlingReported", "Closed", "Rated", "Reopened", "HandlingReported", "Closed",
    ]  # fmt: skip
    history = gw.service.history(UUID(case_id))
    # Each event records the caller's unit (scoped roles) or subject as the actor.
    assert history[0]["actor"] == {"role": "resident", "id": RESIDENT}
    assert history[6]["actor"] == {"role": "department", "id": "cgzf"}
    assert history[8]["actor"]["role"] == "command_centre"
    assert case_state(gw, case_id)["lead_department"] == "cgzf"

    rejected = await report(c, street)
    await command(c, street, rejected, "reject", reason="duplicate", duplicate_of=short)
    cancelled = await report(c, street)
    await command(c, centre, cancelled, "cancel", reason="来电人撤诉")
    assert case_state(gw, rejected)["status"] == "rejected"
    assert case_state(gw, cancelled)["status"] == "cancelled"


async def test_report_answers_created_with_location(gateway: Gateway) -> None:
    response = await gateway.client.post(
        CASES,
        json={
            "source": "grid_patrol",
            "street": "jianwai",
            "title": "井盖缺失",
            "description": "路口井盖缺失",
            "contact": {"name": "王女士"},
        },
        headers=gateway.auth("street", street="jianwai"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["version"] == 1
    assert response.headers["location"] == f"{CASES}/{body['case_id']}"
    state = case_state(gateway, body["case_id"])
    assert (state["status"], state["reporter"]) == ("reported", {"role": "street", "id": "jianwai"})


async def test_a_community_reports_only_in_its_own_area(gateway: Gateway) -> None:
    c, own = gateway.client, gateway.auth("community", community="jianwai_c01")
    case_id = await report(c, own, community=None, grid=None)
    assert case_state(gateway, case_id)["community"] == "jianwai_c01"  # filled in from the token
    before = gateway.service.recorder.max_notification_id()
    response = await c.post(CASES, json={**_report_body(), "community": "jianwai_c02"}, headers=own)
    assert (response.status_code, response.json()["code"]) == (403, "other_community")
    assert gateway.service.recorder.max_notification_id() == before


def _report_body() -> dict[str, Any]:
    return {k: v for k, v in REPORT.items() if k != "grid"}


async def test_rate_takes_the_body_of_the_callers_role(gateway: Gateway) -> None:
    c = gateway.client
    case_id = await full_loop_until_closed(gateway)
    resident = gateway.auth("resident", subject=RESIDENT)
    street = gateway.auth("street", street="jianwai")
    before = gateway.service.recorder.max_notification_id()
    for headers, body in [
        (resident, {"scores": {"cgzf": 80}}),
        (street, {"satisfaction": "satisfied", "solved": True}),
    ]:
        response = await c.post(f"{CASES}/{case_id}/rate", json=body, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "rating_does_not_fit_role"
    assert gateway.service.recorder.max_notification_id() == before
    assert await command(c, street, case_id, "rate", scores={"cgzf": 0}) > 0


async def full_loop_until_closed(gw: Gateway) -> str:
    """A case whistled to cgzf alone, handled and closed, not yet rated."""
    c, street = gw.client, gw.auth("street", street="jianwai")
    cgzf = gw.auth("department", dept="cgzf")
    case_id = await report(c, gw.auth("resident", subject=RESIDENT))
    await command(c, street, case_id, "accept")
    await command(c, street, case_id, "whistle", lead="cgzf", duty_item="CG-001")
    await command(c, cgzf, case_id, "report-in", mode="on_site")
    await command(c, cgzf, case_id, "report-handling", result="resolved")
    await command(c, street, case_id, "close")
    return case_id


async def test_a_resident_acts_only_on_their_own_reports(gateway: Gateway) -> None:
    case_id = await full_loop_until_closed(gateway)
    stranger = gateway.auth("resident", subject="r-2002")
    response = await gateway.client.post(
        f"{CASES}/{case_id}/rate",
        json={"satisfaction": "unsatisfied", "solved": False},
        headers=stranger,
    )
    assert (response.status_code, response.json()["code"]) == (403, "case_out_of_scope")
    assert case_state(gateway, case_id)["resident_rating"] is None


async def test_command_latency_is_recorded_per_outcome(gateway: Gateway) -> None:
    c, street = gateway.client, gateway.auth("street", street="jianwai")
    case_id = await report(c, street)
    await command(c, street, case_id, "accept")
    refused = await c.post(f"{CASES}/{case_id}/close", json={}, headers=street)
    assert refused.status_code == 409
    registry = gateway.resources.metrics.registry

    def count(command: str, outcome: str) -> float | None:
        return registry.get_sample_value(
            "whistleloop_command_seconds_count", {"command": command, "outcome": outcome}
        )

    outsider = gateway.auth("department", dept="sthj")
    assert (
        await c.post(f"{CASES}/{case_id}/report-in", json={"mode": "remote"}, headers=outsider)
    ).status_code == 403
    assert count("report", "ok") == count("accept", "ok") == count("close", "conflict") == 1
    assert count("report-in", "forbidden") == 1


COMMANDS = (
    "accept", "reject", "whistle", "report-in", "hand-off", "dispute", "determine", "consult",
    "report-handling", "rework", "close", "rate", "reopen", "supervise", "escalate", "cancel",
)  # fmt: skip


async def test_openapi_documents_every_command(gateway: Gateway) -> None:
    spec = (await gateway.client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    operations = {f"{CASES}/{{case_id}}/{name}": name for name in COMMANDS} | {CASES: "report"}
    for path, name in operations.items():
        operation = spec["paths"][path]["post"]
        assert operation["operationId"] == name.replace("-", "_")
        assert operation["summary"]
        assert {"401", "403", "404", "409", "422"} <= operation["responses"].keys(), name
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        refs = [body] if "$ref" in body else body["anyOf"]
        for ref in refs:
            assert schemas[ref["$ref"].rsplit("/", 1)[1]]["examples"], name
        success = operation["responses"]["201" if name == "report" else "200"]
        assert success["content"]["application/json"]["schema"]["$ref"].endswith("CommandResult")
