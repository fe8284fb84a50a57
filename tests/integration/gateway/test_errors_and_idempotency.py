"""Refused commands: the right status and problem document, and nothing stored; Idempotency-Key.

Every refusal is checked the same way: status, `application/problem+json` with a stable `code`, and
the store's last notification id unchanged, so a refused command provably recorded nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import httpx
import pytest

from gateway.auth import Role, issue_token
from tests.integration.gateway.conftest import Gateway
from tests.integration.gateway.rest import CASES, REPORT, RESIDENT, command, report

pytestmark = pytest.mark.asyncio

UNKNOWN_CASE = "00000000-0000-4000-8000-000000000000"


def last_event(gw: Gateway) -> int:
    return gw.service.recorder.max_notification_id() or 0


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert (problem["status"], problem["code"]) == (status, code)
    assert problem["detail"]
    return problem


async def accepted_case(gw: Gateway) -> str:
    street = gw.auth("street", street="jianwai")
    case_id = await report(gw.client, street)
    await command(gw.client, street, case_id, "accept")
    return case_id


async def test_refusals_are_problems_and_store_nothing(gateway: Gateway) -> None:
    gw, c = gateway, gateway.client
    street = gw.auth("street", street="jianwai")
    case_id = await accepted_case(gw)
    whistled = await report(c, street)
    await command(c, street, whistled, "accept")
    await command(c, street, whistled, "whistle", lead="cgzf", assisting=["zj"], duty_item="CG-001")
    expired = issue_token(gw.settings, Role.STREET, street="jianwai", ttl=-60)
    forged = issue_token(
        gw.settings.model_copy(update={"jwt_secret": "x" * 40}), Role.STREET, street="jianwai"
    )
    whistle = {"lead": "cgzf", "duty_item": "CG-001"}
    refusals: list[tuple[str, str, dict[str, str], Any, int, str]] = [
        # path, action, headers, body, status, code
        (case_id, "whistle", {}, whistle, 401, "missing_token"),
        (case_id, "whistle", {"Authorization": "Bearer not-a-jwt"}, whistle, 401, "invalid_token"),
        (case_id, "whistle", {"Authorization": f"Bearer {forged}"}, whistle, 401, "invalid_token"),
        (case_id, "whistle", {"Authorization": f"Bearer {expired}"}, whistle, 401, "token_expired"),
        # the role may not call the endpoint at all
        (case_id, "whistle", gw.auth("department", dept="cgzf"), whistle, 403, "forbidden"),
        (case_id, "whistle", gw.auth("viewer"), whistle, 403, "forbidden"),
        # the aggregate's WrongActor: another street's case; an assisting department reporting
        (case_id, "whistle", gw.auth("street", street="chaowai"), whistle, 403, "other_street"),
        (whistled, "report-handling", gw.auth("department", dept="zj"), {"result": "resolved"},
         403, "not_lead_department"),
        # a department never on the case does not learn of it from the aggregate's 409
        (whistled, "report-in", gw.auth("department", dept="sthj"), {"mode": "on_site"},
         403, "case_out_of_scope"),
        (UNKNOWN_CASE, "whistle", street, whistle, 404, "case_not_found"),
        ("not-a-uuid", "whistle", street, whistle, 422, "invalid_request"),
        (case_id, "close", street, {}, 409, "handling_not_reported"),
        (case_id, "whistle", street, {"duty_item": "CG-001"}, 422, "invalid_request"),
        (case_id, "whistle", street, {**whistle, "colour": "red"}, 422, "invalid_request"),
        (case_id, "whistle", street, {**whistle, "lead": "nosuchdept"}, 422, "unknown_department"),
        (case_id, "whistle", street, {**whistle, "lead": "CGZF!"}, 422, "invalid_request"),
        (case_id, "whistle", street, {**whistle, "urgency": "soon"}, 422, "invalid_urgency"),
        (whistled, "report-in", gw.auth("department", dept="cgzf"), {"mode": "teleport"},
         422, "invalid_mode"),
        (case_id, "whistle", street, {**whistle, "assisting": ["zj"] * 21}, 422, "invalid_request"),
    ]  # fmt: skip
    before = last_event(gw)
    for target, action, headers, body, status, code in refusals:
        response = await c.post(f"{CASES}/{target}/{action}", json=body, headers=headers)
        problem = assert_problem(response, status, code)
        assert problem["instance"] == f"{CASES}/{target}/{action}"
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert last_event(gw) == before, (action, code)
    assert gw.service.case(UUID(case_id))["status"] == "accepted"


async def test_malformed_and_oversized_bodies(gateway: Gateway) -> None:
    gw, c = gateway, gateway.client
    street = gw.auth("street", street="jianwai")
    case_id = await accepted_case(gw)
    before = last_event(gw)
    malformed = await c.post(
        f"{CASES}/{case_id}/whistle",
        content=b'{"lead": "cgzf",',
        headers={**street, "Content-Type": "application/json"},
    )
    assert_problem(malformed, 422, "invalid_request")
    huge = {**REPORT, "description": "x" * (gw.settings.gateway_max_body + 1)}
    assert_problem(await c.post(CASES, json=huge, headers=street), 413, "body_too_large")
    long_title = await c.post(CASES, json={**REPORT, "title": "长" * 201}, headers=street)
    assert_problem(long_title, 422, "invalid_request")
    extra_field = await c.post(CASES, json={**REPORT, "priority": 1}, headers=street)
    assert_problem(extra_field, 422, "invalid_request")
    assert last_event(gw) == before


# --- Idempotency-Key ---------------------------------------------------------------------------


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def test_a_retried_report_is_replayed_not_repeated(gateway: Gateway) -> None:
    c, resident = gateway.client, gateway.auth("resident", subject=RESIDENT)
    first = await c.post(CASES, json=REPORT, headers=keyed(resident, "k-1"))
    before = last_event(gateway)
    again = await c.post(CASES, json=REPORT, headers=keyed(resident, "k-1"))
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert again.json() == first.json()
    assert last_event(gateway) == before

    other_body = await c.post(
        CASES, json={**REPORT, "title": "另一件事"}, headers=keyed(resident, "k-1")
    )
    assert_problem(other_body, 422, "idempotency_key_reused")

    # Keys belong to the caller, not the token: a retry with a refreshed token is a replay.
    refreshed = gateway.auth("resident", subject=RESIDENT)
    retried = await c.post(CASES, json=REPORT, headers=keyed(refreshed, "k-1"))
    assert retried.status_code == 201
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.headers["location"] == first.headers["location"]
    assert retried.json()["case_id"] == first.json()["case_id"]

    # Another caller's same key is its own.
    neighbour = gateway.auth("resident", subject="r-2002")
    theirs = await c.post(CASES, json=REPORT, headers=keyed(neighbour, "k-1"))
    assert theirs.status_code == 201
    assert theirs.json()["case_id"] != first.json()["case_id"]
    assert last_event(gateway) == before + 1


async def test_a_refused_command_is_replayed_as_refused(gateway: Gateway) -> None:
    c, street = gateway.client, gateway.auth("street", street="jianwai")
    case_id = await accepted_case(gateway)
    url = f"{CASES}/{case_id}/close"
    first = await c.post(url, json={}, headers=keyed(street, "close-1"))
    again = await c.post(url, json={}, headers=keyed(street, "close-1"))
    assert_problem(first, 409, "handling_not_reported")
    assert_problem(again, 409, "handling_not_reported")
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


async def test_concurrent_duplicates_run_once(gateway: Gateway) -> None:
    c, street = gateway.client, gateway.auth("street", street="jianwai")
    case_id = await accepted_case(gateway)
    before = last_event(gateway)
    headers = keyed(street, "whistle-1")
    body = {"lead": "cgzf", "assisting": ["ghzr"], "duty_item": "CG-001"}
    url = f"{CASES}/{case_id}/whistle"
    responses = await asyncio.gather(*(c.post(url, json=body, headers=headers) for _ in range(2)))
    executed = [
        r for r in responses if r.status_code == 200 and "idempotent-replayed" not in r.headers
    ]
    assert len(executed) == 1, [r.text for r in responses]
    for other in responses:
        if other is not executed[0]:
            assert other.status_code in (200, 409), other.text
            if other.status_code == 409:
                assert other.json()["code"] == "idempotency_key_in_flight"
    assert last_event(gateway) == before + 1
    assert gateway.service.case(UUID(case_id))["status"] == "whistled"
