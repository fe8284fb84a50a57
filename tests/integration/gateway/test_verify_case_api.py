"""`GET /api/v1/cases/{id}/verify`: one case's audit recomputed from the event store, each leaf proved
against the latest signed head; a rewritten `audit_log` row is named, later events are pending."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import update

from domain.actors import Actor
from infra.signing import load_or_create_signer
from projections.audit import audit_log, publish_tree_head
from tests.integration.builders import report_case, run_full_loop
from tests.integration.gateway.conftest import Gateway
from tests.integration.gateway.test_queries_api import ok, problem

pytestmark = pytest.mark.asyncio

Json = dict[str, Any]


async def sign_head(gw: Gateway) -> Json:
    """A head over everything audited so far (the projection signs on its own schedule)."""
    await gw.settle()
    signer = load_or_create_signer(gw.settings.audit_key_file())
    return await publish_tree_head(gw.resources.views, signer, gw.resources.js)


async def verify(gw: Gateway, case_id: UUID, role: str = "inspector", **scope: str) -> Json:
    path = f"/api/v1/cases/{case_id}/verify"
    result: Json = ok(await gw.client.get(path, headers=gw.auth(role, **scope)))
    return result


def tamper(gw: Gateway, case_id: UUID, version: int, **values: str) -> None:
    """Rewrites one `audit_log` row in the views database, as an intruder with SQL access would."""
    c = audit_log.c
    with gw.resources.views.begin() as conn:
        conn.execute(
            update(audit_log)
            .where(c.aggregate_id == str(case_id), c.version == version)
            .values(**values)
        )


async def test_a_clean_case_verifies_every_event_against_the_signed_head(
    gateway: Gateway, actors: dict[str, Actor]
) -> None:
    gw = gateway
    case_id = run_full_loop(gw.service, gw.clock, actors).case_id
    head = await sign_head(gw)
    history = ok(await gw.client.get(f"/api/v1/cases/{case_id}/history", headers=gw.auth("viewer")))

    result = await verify(gw, case_id)

    assert result["ok"] is True
    assert result["head_signature_ok"] is True
    assert (result["tree_size"], result["root_hash"]) == (head["tree_size"], head["root_hash"])
    assert [e["version"] for e in result["events"]] == list(range(1, 23))
    for event, entry in zip(result["events"], history, strict=True):
        assert (event["ok"], event["chain_ok"], event["included"]) == (True, True, True), event
        assert event["issues"] == []
        assert event["leaf_hash"] == event["store_leaf_hash"] == entry["leaf_hash"]
        assert event["chain_hash"] == event["store_chain_hash"] == entry["chain_hash"]
        assert (event["event_type"], event["leaf_index"]) == (
            entry["event_type"],
            entry["leaf_index"],
        )
    # the case's own street may verify it too; a department never on it may not
    assert (await verify(gw, case_id, "street", street="jianwai"))["ok"] is True
    outsider = gw.auth("department", dept="sthj")
    problem(
        await gw.client.get(f"/api/v1/cases/{case_id}/verify", headers=outsider), 403, "forbidden"
    )
    unknown = await gw.client.get(f"/api/v1/cases/{uuid4()}/verify", headers=gw.auth("inspector"))
    problem(unknown, 404, "case_not_found")


async def test_a_rewritten_audit_row_is_named_and_the_rest_still_verify(
    gateway: Gateway, actors: dict[str, Actor]
) -> None:
    gw = gateway
    case_id = run_full_loop(gw.service, gw.clock, actors).case_id
    await sign_head(gw)
    history = ok(await gw.client.get(f"/api/v1/cases/{case_id}/history", headers=gw.auth("viewer")))
    tamper(gw, case_id, 5, leaf_hash="00" * 32)
    tamper(gw, case_id, 9, body='{"payload": "rewritten"}')
    tamper(gw, case_id, 12, chain_hash="11" * 32)

    result = await verify(gw, case_id)

    assert result["ok"] is False
    assert result["head_signature_ok"] is True  # the head is intact: it is the row that lies
    flagged = {e["version"]: e["issues"] for e in result["events"] if not e["ok"]}
    assert flagged == {5: ["leaf_differs"], 9: ["body_differs"], 12: ["chain_broken"]}
    fifth = result["events"][4]
    assert fifth["leaf_hash"] == "00" * 32 != fifth["store_leaf_hash"] == history[4]["leaf_hash"]
    assert fifth["included"] is True  # the store's event is in the signed tree; the row is not it
    assert result["events"][11]["chain_ok"] is False


async def test_events_after_the_signed_head_are_pending_not_failures(
    gateway: Gateway, actors: dict[str, Actor]
) -> None:
    gw = gateway
    case_id = report_case(gw.service, actors)
    head = await sign_head(gw)
    gw.clock.advance(timedelta(minutes=5))
    gw.service.accept(case_id, actors["street"], "属实，受理")
    gw.clock.advance(timedelta(minutes=5))
    gw.service.whistle(case_id, actors["street"], lead="cgzf", duty_item="CG-001")
    await gw.settle()

    result = await verify(gw, case_id)

    assert result["ok"] is True
    assert result["tree_size"] == head["tree_size"]
    included = [e["included"] for e in result["events"]]
    assert included == [True, "pending", "pending"]
    later = result["events"][1:]
    assert all(e["leaf_index"] >= head["tree_size"] and e["chain_ok"] for e in later)
    assert result["audited_through"] >= max(e["notification_id"] for e in later)
