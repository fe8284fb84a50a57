"""The read endpoints over real read models: case list paging and filters, detail, history, views,
measures, reference data and the audit trail's heads and proofs, with bad input refused as 422/404."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from domain.actors import Actor
from infra.signing import load_or_create_signer, verify_tree_head
from projections.audit import publish_tree_head
from projections.merkle import verify_consistency, verify_inclusion
from tests.integration.builders import drive, report_case, run_full_loop
from tests.integration.gateway.conftest import Gateway

pytestmark = pytest.mark.asyncio

Json = dict[str, Any]


def problem(response: httpx.Response, status: int, code: str) -> Json:
    """The response is a problem document with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: Json = response.json()
    assert body["code"] == code, body
    return body


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


async def five_cases(gw: Gateway, actors: dict[str, Actor]) -> dict[str, UUID]:
    """A closed full loop and a whistled case in 建外, two fresh reports there, one in 呼家楼."""
    cases = {
        "closed": run_full_loop(gw.service, gw.clock, actors).case_id,
        "whistled": drive(gw.service, gw.clock, actors, "whistled", title="占道经营").case_id,
        "fresh_1": report_case(gw.service, actors, title="噪音扰民"),
        "fresh_2": report_case(gw.service, actors, title="井盖缺失"),
        "elsewhere": report_case(
            gw.service, actors, street="hujialou", community="hujialou_c01", grid=None
        ),
    }
    await gw.settle()
    return cases


async def walk(gw: Gateway, headers: dict[str, str], **params: Any) -> list[Json]:
    """Every item of the case list, page by page."""
    items: list[Json] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = ok(await gw.client.get("/api/v1/cases", params=query, headers=headers))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_case_list_pages_filters_and_refuses_bad_input(
    gateway: Gateway, actors: dict[str, Actor]
) -> None:
    gw = gateway
    cases = await five_cases(gw, actors)
    cc = gw.auth("command_centre")

    items = await walk(gw, cc, limit=2)
    ids = [item["case_id"] for item in items]
    assert sorted(ids) == sorted(str(c) for c in cases.values())  # all of them, none twice
    stamps = [(item["reported_at"], item["case_id"]) for item in items]
    assert stamps == sorted(stamps, reverse=True)  # newest report first
    assert "obligations" not in items[0]

    async def ids_for(**params: Any) -> set[str]:
        return {item["case_id"] for item in await walk(gw, cc, **params)}

    assert await ids_for(street="hujialou") == {str(cases["elsewhere"])}
    assert await ids_for(status="closed") == {str(cases["closed"])}
    assert await ids_for(department="cgzf") == {str(cases["closed"]), str(cases["whistled"])}
    assert await ids_for(text="井盖") == {str(cases["fresh_2"])}
    assert await ids_for(stage="collect", street="jianwai") == {
        str(cases["fresh_1"]),
        str(cases["fresh_2"]),
    }
    assert await ids_for(reported_from="2026-04-01") == set()

    async def refused(code: str, **params: Any) -> Json:
        response = await gw.client.get("/api/v1/cases", params=params, headers=cc)
        return problem(response, 422, code)

    await refused("invalid_cursor", cursor="not-a-cursor")
    await refused("invalid_status", status="lost")
    await refused("unknown_department", department="nobody")
    await refused("invalid_reported_from", reported_from="2026-13-01")
    await refused("invalid_request", limit=0)
    await refused("invalid_request", limit=100_000)
    await refused("invalid_request", overdue="perhaps")
    body = await refused("invalid_request", colour="red")  # no such filter
    assert body["errors"][0]["loc"][-1] == "colour"
    problem(await gw.client.get("/api/v1/cases"), 401, "missing_token")


async def test_case_detail_and_history(gateway: Gateway, actors: dict[str, Actor]) -> None:
    gw = gateway
    cases = await five_cases(gw, actors)
    cc = gw.auth("command_centre")
    closed = cases["closed"]

    detail = ok(await gw.client.get(f"/api/v1/cases/{closed}", headers=cc))
    assert detail["case"]["case_id"] == str(closed)
    assert detail["case"]["status"] == "closed"
    assert detail["case"]["version"] == 22
    assert detail["deadlines"] == []  # a closed case owes nothing
    assert {o["department"] for o in detail["obligations"]} == {"cgzf", "zj", "ghzr"}

    whistled = ok(await gw.client.get(f"/api/v1/cases/{cases['whistled']}", headers=cc))
    assert {d["department"] for d in whistled["deadlines"]} == {"cgzf", "zj"}

    history = ok(await gw.client.get(f"/api/v1/cases/{closed}/history", headers=cc))
    assert [entry["version"] for entry in history] == list(range(1, 23))
    assert history[0]["event_type"] == "CaseReported"
    assert history[0]["actor"] == {"role": "resident", "id": "r-1001"}
    assert history[-1]["event_type"] == "Rated"
    assert len({entry["leaf_index"] for entry in history}) == 22

    problem(await gw.client.get(f"/api/v1/cases/{uuid4()}", headers=cc), 404, "case_not_found")
    problem(
        await gw.client.get(f"/api/v1/cases/{uuid4()}/history", headers=cc), 404, "case_not_found"
    )
    problem(await gw.client.get("/api/v1/cases/not-a-uuid", headers=cc), 422, "invalid_request")


async def test_views_and_measures(gateway_any_store: Gateway, actors: dict[str, Actor]) -> None:
    """The same figures whichever event store (SQLite, PostgreSQL) the projections read."""
    gw = gateway_any_store
    await five_cases(gw, actors)
    viewer = gw.auth("viewer")

    overview = ok(await gw.client.get("/api/v1/views/overview", headers=viewer))
    assert overview["statuses"]["closed"] == 1
    assert overview["statuses"]["whistled"] == 1
    assert overview["statuses"]["reported"] == 3
    assert overview["open"] == 1  # open: whistled to handled (reports await acceptance)
    assert sum(overview["stages"].values()) == 5

    linkage = ok(await gw.client.get("/api/v1/views/linkage", headers=viewer))
    cells = {(c["street"], c["department"]): c for c in linkage}
    assert cells[("jianwai", "cgzf")]["open"] == 1
    assert cells[("jianwai", "cgzf")]["closed"] == 1

    board = ok(await gw.client.get("/api/v1/views/supervision", headers=viewer))
    assert set(board["counts"]) == {"overdue", "red", "yellow", "white"}
    assert board["counts"]["overdue"] == 0  # the whistled case's deadlines lie ahead

    ranking = ok(
        await gw.client.get(
            "/api/v1/views/performance", params={"month": "2026-03"}, headers=viewer
        )
    )
    received = {entry["department"]: entry["counts"]["received"] for entry in ranking}
    assert received["cgzf"] >= 2
    assert received["sthj"] == 0
    assert set(received) == set(gw.service.reference.departments)
    by_received = ok(
        await gw.client.get("/api/v1/views/performance", params={"by": "received"}, headers=viewer)
    )  # no period: month to date
    assert by_received[0]["rank"] == 1
    assert by_received[0]["counts"]["received"] == max(received.values())

    streets = ok(
        await gw.client.get(
            "/api/v1/views/measures",
            params={"dimension": "street", "start": "2026-03-01", "end": "2026-03-31"},
            headers=viewer,
        )
    )
    assert "jianwai" in {row["key"] for row in streets}

    cgzf = ok(
        await gw.client.get(
            "/api/v1/departments/cgzf/performance", params={"month": "2026-03"}, headers=viewer
        )
    )
    assert cgzf["department"] == "cgzf"
    assert cgzf["period"] == {"start": "2026-03-01", "end": "2026-03-31"}
    assert cgzf["counts"]["received"] == received["cgzf"]
    assert cgzf["counts"]["open_obligations"] == 2  # response + handling, the whistled case

    async def refused(path: str, status: int, code: str, **params: Any) -> None:
        problem(await gw.client.get(path, params=params, headers=viewer), status, code)

    await refused("/api/v1/views/performance", 422, "invalid_ranking", by="luck")
    await refused("/api/v1/views/performance", 422, "invalid_period", month="2026-3")
    await refused("/api/v1/views/performance", 422, "invalid_period", month="2026-13")
    await refused(
        "/api/v1/views/performance", 422, "invalid_period", month="2026-03", start="2026-03-01"
    )
    await refused("/api/v1/views/measures", 422, "invalid_dimension", dimension="planet")
    await refused(
        "/api/v1/views/measures", 422, "invalid_period", start="2026-03-09", end="2026-03-01"
    )
    await refused("/api/v1/departments/nobody/performance", 404, "department_not_found")
    await refused("/api/v1/departments/cgzf/performance", 422, "invalid_period", start="March")
    problem(
        await gw.client.get("/api/v1/views/overview", headers=gw.auth("resident")), 403, "forbidden"
    )


async def test_reference_data(gateway: Gateway) -> None:
    gw = gateway
    anyone = gw.auth("resident")
    departments = ok(await gw.client.get("/api/v1/reference/departments", headers=anyone))
    assert {"cgzf", "ghzr", "zj", "sthj"} <= {d["code"] for d in departments}
    assert all(d["liaison"]["name"] for d in departments)
    streets = ok(await gw.client.get("/api/v1/reference/streets", headers=anyone))
    assert "jianwai" in {s["code"] for s in streets}
    communities = ok(
        await gw.client.get(
            "/api/v1/reference/communities", params={"street": "jianwai"}, headers=anyone
        )
    )
    assert communities
    assert {c["street"] for c in communities} == {"jianwai"}
    everywhere = ok(await gw.client.get("/api/v1/reference/communities", headers=anyone))
    assert len(everywhere) > len(communities)
    problem(
        await gw.client.get(
            "/api/v1/reference/communities", params={"street": "atlantis"}, headers=anyone
        ),
        422,
        "unknown_street",
    )
    duty = ok(await gw.client.get("/api/v1/reference/duty-items", headers=anyone))
    assert duty["version"] == 1
    item = next(i for i in duty["items"] if i["code"] == "CG-001")
    assert item["lead_department"] == "cgzf"
    assert item["section"] == "urban_management"


async def sign_head(gw: Gateway) -> Json:
    """Signs a head over everything audited so far (as the audit projection does on its schedule)."""
    await gw.settle()
    signer = load_or_create_signer(gw.settings.audit_key_file())
    return await publish_tree_head(gw.resources.views, signer, gw.resources.js)


async def test_audit_heads_and_proofs(gateway: Gateway, actors: dict[str, Actor]) -> None:
    gw = gateway
    viewer = gw.auth("viewer")
    first = report_case(gw.service, actors)
    early = await sign_head(gw)
    closed = run_full_loop(gw.service, gw.clock, actors).case_id
    late = await sign_head(gw)
    public_key = load_or_create_signer(gw.settings.audit_key_file()).public_key_raw

    head = ok(await gw.client.get("/api/v1/audit/tree-head", headers=viewer))
    assert head["tree_size"] == late["tree_size"] > early["tree_size"]
    assert verify_tree_head({k: v for k, v in head.items() if k != "published"}, public_key)

    proof = ok(await gw.client.get(f"/api/v1/cases/{closed}/proof", headers=viewer))
    assert proof["tree_head"] == head
    assert proof["pending"] == []
    assert [e["version"] for e in proof["events"]] == list(range(1, 23))
    root = bytes.fromhex(head["root_hash"])
    for event in proof["events"]:
        path = [bytes.fromhex(node) for node in event["proof"]]
        leaf = bytes.fromhex(event["leaf_hash"])
        assert verify_inclusion(leaf, event["leaf_index"], head["tree_size"], path, root)
    first_proof = ok(await gw.client.get(f"/api/v1/cases/{first}/proof", headers=viewer))
    assert [e["event_type"] for e in first_proof["events"]] == ["CaseReported"]

    sizes = {"first": early["tree_size"], "second": late["tree_size"]}
    consistency = ok(await gw.client.get("/api/v1/audit/consistency", params=sizes, headers=viewer))
    assert consistency["first_root"] == early["root_hash"]
    assert verify_consistency(
        early["tree_size"],
        bytes.fromhex(early["root_hash"]),
        late["tree_size"],
        bytes.fromhex(late["root_hash"]),
        [bytes.fromhex(node) for node in consistency["proof"]],
    )

    async def refused(status: int, code: str, **params: Any) -> None:
        response = await gw.client.get("/api/v1/audit/consistency", params=params, headers=viewer)
        problem(response, status, code)

    await refused(422, "invalid_first", first=0, second=1)
    await refused(422, "invalid_tree_sizes", first=1, second=late["tree_size"] + 100)
    await refused(422, "invalid_tree_sizes", first=2, second=1)
    await refused(422, "invalid_request", first="one", second=2)
    await refused(422, "invalid_request", first=1)
    problem(
        await gw.client.get("/api/v1/audit/consistency", params=sizes, headers=gw.auth("resident")),
        403,
        "forbidden",
    )


async def test_proof_before_any_head_and_events_after_it(
    gateway: Gateway, actors: dict[str, Actor]
) -> None:
    """A case newer than the latest head lists its events as pending rather than failing."""
    gw = gateway
    cc = gw.auth("command_centre")
    await sign_head(gw)  # the duty list's publication only
    case_id = report_case(gw.service, actors)
    await gw.settle()
    proof = ok(await gw.client.get(f"/api/v1/cases/{case_id}/proof", headers=cc))
    assert proof["events"] == []
    history = ok(await gw.client.get(f"/api/v1/cases/{case_id}/history", headers=cc))
    assert proof["pending"] == [history[0]["notification_id"]]
