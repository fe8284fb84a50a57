"""`GET /api/v1/cases/{id}?as_of=`: the case as it stood at a moment, replayed from the event store."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest

from domain.actors import Actor
from domain.clock import CHINA_TZ
from infra.event_codec import iso_utc
from tests.integration.builders import Driver, Timeline
from tests.integration.gateway.conftest import Gateway
from tests.unit.builders import ASSISTING, ITEM, LEAD, dept

pytestmark = pytest.mark.asyncio

Json = dict[str, Any]


def drive_case(gw: Gateway, actors: dict[str, Actor]) -> Timeline:
    """Report, accept, whistle, report in and handle, hours apart, keeping each version's state."""
    a = actors
    driver = Driver(gw.service, gw.clock, actors, keep_states=True)
    driver.report()
    driver.step(lambda s, c: s.accept(c, a["street"], "属实"), timedelta(hours=1))
    driver.step(
        lambda s, c: s.whistle(c, a["street"], lead=LEAD, assisting=(ASSISTING,), duty_item=ITEM),
        timedelta(minutes=30),
    )
    driver.step(lambda s, c: s.report_in(c, dept(LEAD), "on_site"), timedelta(hours=2))
    driver.step(lambda s, c: s.report_handling(c, dept(LEAD), "resolved"), timedelta(hours=20))
    assert driver.timeline is not None
    return driver.timeline


async def as_of(
    gw: Gateway, case_id: object, moment: str, role: str = "inspector"
) -> httpx.Response:
    return await gw.client.get(
        f"/api/v1/cases/{case_id}", params={"as_of": moment}, headers=gw.auth(role)
    )


def expected(state: Json) -> Json:
    """The state as JSON carries it: times as the event bodies' ISO-8601 UTC text."""
    plain: Json = {}
    for key, value in state.items():
        if isinstance(value, dict):
            plain[key] = expected(value)
        elif hasattr(value, "astimezone"):
            plain[key] = iso_utc(value)
        else:
            plain[key] = value
    return plain


async def test_each_moment_returns_the_state_and_version_then(
    gateway_any_store: Gateway, actors: dict[str, Actor]
) -> None:
    """Read straight after the commands, with no `settle()`: the store answers, not a view.

    On SQLite and PostgreSQL, whose timestamps must both compare exactly with the clock's.
    """
    gw = gateway_any_store
    timeline = drive_case(gw, actors)
    statuses = []
    for version, (at, state) in enumerate(
        zip(timeline.times, timeline.states, strict=True), start=1
    ):
        just_after = at + timedelta(minutes=1)  # before the next command (each is ≥ 30 min later)
        for moment in (at, just_after, at.astimezone(CHINA_TZ)):
            response = await as_of(gw, timeline.case_id, moment.isoformat())
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["version"] == version
            assert body["as_of"] == iso_utc(moment)
            assert body["case"] == expected(state)
        statuses.append(body["case"]["status"])
    assert statuses == ["reported", "accepted", "whistled", "in_handling", "handled"]
    assert body["case"]["description"] == "3 号楼楼顶正在搭建彩钢房"  # the store's, not the board's

    later = (timeline.times[-1] + timedelta(days=30)).isoformat()
    centre = await as_of(gw, timeline.case_id, later, role="command_centre")
    assert centre.status_code == 200
    assert centre.json()["version"] == timeline.version


async def test_bad_moments_and_unknown_cases(gateway: Gateway, actors: dict[str, Actor]) -> None:
    gw = gateway
    timeline = drive_case(gw, actors)
    case_id = timeline.case_id

    def code(response: httpx.Response, status: int) -> str:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        found: str = response.json()["code"]
        return found

    before = (timeline.times[0] - timedelta(seconds=1)).isoformat()
    assert code(await as_of(gw, case_id, before), 404) == "case_not_yet_reported"
    assert code(await as_of(gw, uuid4(), timeline.times[0].isoformat()), 404) == "case_not_found"
    assert code(await as_of(gw, case_id, "2026-03-02T09:00:00"), 422) == "invalid_as_of"  # naive
    assert code(await as_of(gw, case_id, "yesterday"), 422) == "invalid_as_of"
    assert code(await as_of(gw, case_id, "2026-02-30T09:00:00+08:00"), 422) == "invalid_as_of"
    assert code(await as_of(gw, case_id, "2" * 100), 422) == "invalid_request"  # too long
    assert code(await as_of(gw, case_id, "0001-01-01T00:00:00+01:00"), 422) == "invalid_as_of"


@pytest.mark.parametrize("role", ["viewer", "resident", "street", "community", "department"])
async def test_only_oversight_may_travel(
    gateway: Gateway, actors: dict[str, Actor], role: str
) -> None:
    """Refused before anything is read, even for the street, community and reporter the case is theirs."""
    gw = gateway
    timeline = drive_case(gw, actors)
    scope = {
        "street": {"street": "jianwai"},
        "community": {"community": "jianwai_c01"},
        "department": {"dept": LEAD},
        "resident": {"subject": "r-1001"},
    }.get(role, {})
    response = await gw.client.get(
        f"/api/v1/cases/{timeline.case_id}",
        params={"as_of": timeline.times[-1].isoformat()},
        headers=gw.auth(role, **scope),
    )
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "forbidden"
