"""Who sees which case: a department the cases it is or was on, a street or community its own area, a
resident what they reported; lists are pinned to the caller's unit, and everything else is 403."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import pytest

from domain.actors import Actor
from infra.signing import load_or_create_signer
from projections.audit import publish_tree_head
from tests.integration.builders import drive, report_case
from tests.integration.gateway.conftest import Gateway

pytestmark = pytest.mark.asyncio


@dataclass(frozen=True)
class Cases:
    handed_off: UUID  # 建外, r-1001's report: cgzf handed it off to ghzr (zj assists)
    whistled: UUID  # 建外: lead cgzf, assisting zj
    elsewhere: UUID  # 呼家楼, r-2002's report: lead sthj


async def three_cases(gw: Gateway, actors: dict[str, Actor]) -> Cases:
    service, street = gw.service, Actor.of("street", "hujialou")
    elsewhere = report_case(
        service,
        actors,
        actor=Actor.of("resident", "r-2002"),
        street="hujialou",
        community="hujialou_c01",
        grid=None,
    )
    service.accept(elsewhere, street)
    service.whistle(elsewhere, street, lead="sthj", duty_item="CG-007")
    cases = Cases(
        handed_off=drive(service, gw.clock, actors, "handed_off").case_id,
        whistled=drive(service, gw.clock, actors, "whistled", title="占道经营").case_id,
        elsewhere=elsewhere,
    )
    await gw.settle()
    signer = load_or_create_signer(gw.settings.audit_key_file())
    await publish_tree_head(gw.resources.views, signer, gw.resources.js)  # for the proofs
    return cases


async def status(gw: Gateway, path: str, headers: dict[str, str], **params: str) -> int:
    response = await gw.client.get(path, params=params, headers=headers)
    if response.status_code == 403:
        assert response.json()["code"] == "forbidden"
    return response.status_code


async def case_reads(gw: Gateway, case_id: UUID, headers: dict[str, str]) -> set[int]:
    """The statuses of the case's detail, history and proof for these headers."""
    base = f"/api/v1/cases/{case_id}"
    return {await status(gw, path, headers) for path in (base, f"{base}/history", f"{base}/proof")}


async def listed(gw: Gateway, headers: dict[str, str], **params: str) -> set[str]:
    response = await gw.client.get("/api/v1/cases", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return {item["case_id"] for item in response.json()["items"]}


async def test_a_department_sees_the_cases_it_is_or_was_on(
    gateway: Gateway, actors: dict[str, Actor]
) -> None:
    gw = gateway
    cases = await three_cases(gw, actors)
    cgzf, ghzr = gw.auth("department", dept="cgzf"), gw.auth("department", dept="ghzr")

    assert await case_reads(gw, cases.handed_off, cgzf) == {200}  # handed off, still its past
    assert await case_reads(gw, cases.handed_off, ghzr) == {200}  # handed to it
    assert await case_reads(gw, cases.whistled, cgzf) == {200}
    assert await case_reads(gw, cases.whistled, ghzr) == {403}  # never on it
    assert await case_reads(gw, cases.elsewhere, cgzf) == {403}

    # Its list holds every case it may open: the one it handed off too.
    assert await listed(gw, cgzf) == {str(cases.handed_off), str(cases.whistled)}
    assert await listed(gw, cgzf, department="cgzf") == {str(cases.whistled)}  # on it now
    assert await listed(gw, ghzr) == {str(cases.handed_off)}
    assert await status(gw, "/api/v1/cases", cgzf, department="sthj") == 403
    assert await status(gw, "/api/v1/cases", cgzf, involved="sthj") == 403

    performance = "/api/v1/departments/{}/performance"
    assert await status(gw, performance.format("cgzf"), cgzf) == 200
    assert await status(gw, performance.format("sthj"), cgzf) == 403
    assert await status(gw, performance.format("nobody"), cgzf) == 403  # no probing for codes
    assert await status(gw, "/api/v1/views/performance", cgzf) == 403  # the ranking is oversight's


async def test_a_street_and_a_community_see_their_own_area(
    gateway: Gateway, actors: dict[str, Actor]
) -> None:
    gw = gateway
    cases = await three_cases(gw, actors)
    own = {str(cases.handed_off), str(cases.whistled)}
    for name, mine, other in (
        ("street", "jianwai", "hujialou"),
        ("community", "jianwai_c01", "hujialou_c01"),
    ):
        headers = gw.auth(name, **{name: mine})
        assert await listed(gw, headers) == own  # pinned to its own area
        assert await listed(gw, headers, **{name: mine}) == own
        assert await status(gw, "/api/v1/cases", headers, **{name: other}) == 403
        assert await case_reads(gw, cases.handed_off, headers) == {200}
        assert await case_reads(gw, cases.elsewhere, headers) == {403}
    hujialou = gw.auth("street", street="hujialou")
    assert await listed(gw, hujialou, street="hujialou") == {str(cases.elsewhere)}
    assert await case_reads(gw, cases.elsewhere, hujialou) == {200}
    assert await case_reads(gw, cases.whistled, hujialou) == {403}


async def test_a_resident_sees_only_what_they_reported(
    gateway: Gateway, actors: dict[str, Actor]
) -> None:
    gw = gateway
    cases = await three_cases(gw, actors)
    reporter = gw.auth("resident", subject="r-1001")
    neighbour = gw.auth("resident", subject="r-2002")

    assert await case_reads(gw, cases.handed_off, reporter) == {200}
    assert await case_reads(gw, cases.elsewhere, reporter) == {403}
    assert await case_reads(gw, cases.elsewhere, neighbour) == {200}
    assert await case_reads(gw, cases.handed_off, neighbour) == {403}
    assert await status(gw, "/api/v1/cases", reporter) == 403  # no list for residents


async def test_oversight_sees_everything(gateway: Gateway, actors: dict[str, Actor]) -> None:
    gw = gateway
    cases = await three_cases(gw, actors)
    every = {str(cases.handed_off), str(cases.whistled), str(cases.elsewhere)}
    for role in ("command_centre", "inspector", "viewer"):
        headers = gw.auth(role)
        assert await listed(gw, headers) == every
        for case_id in (cases.handed_off, cases.elsewhere):
            assert await case_reads(gw, case_id, headers) == {200}
        assert await status(gw, "/api/v1/departments/sthj/performance", headers) == 200
