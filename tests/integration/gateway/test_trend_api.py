"""GET /api/v1/views/trend over events folded by the real projectors: every case counted once on its
China day, today's figures equal the overview's, oversight roles only, bad `days` refused as 422."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from domain.actors import Actor
from tests.integration.builders import drive, report_case, run_full_loop
from tests.integration.gateway.conftest import Gateway
from tests.integration.gateway.test_queries_api import ok, problem

pytestmark = pytest.mark.asyncio

TREND = "/api/v1/views/trend"


def total(days: list[dict[str, Any]], key: str) -> int:
    return sum(day[key] for day in days)


async def test_the_trend_counts_what_happened_each_day(
    gateway: Gateway, actors: dict[str, Actor]
) -> None:
    gw = gateway
    run_full_loop(gw.service, gw.clock, actors)  # spans two days: closed twice, rated twice
    drive(gw.service, gw.clock, actors, "in_handling", title="占道经营")
    gw.clock.advance(timedelta(days=1))
    drive(gw.service, gw.clock, actors, "whistled", title="噪音扰民")
    report_case(gw.service, actors, title="井盖缺失")
    await gw.settle()
    viewer = gw.auth("viewer")

    week = ok(await gw.client.get(TREND, params={"days": 7}, headers=viewer))
    days = week["days"]
    assert len(days) == 7
    assert days[-1]["day"] == week["end"]
    assert total(days, "reported") == 4
    assert total(days, "whistled") == 3
    assert total(days, "reported_in") == 2  # the full loop's lead and 占道经营's
    assert total(days, "closed") == 2  # the full loop, closed before and after reopening
    assert total(days, "rated") == 2  # its two residents' ratings

    today = days[-1]
    overview = ok(await gw.client.get("/api/v1/views/overview", headers=viewer))
    assert today["day"] == overview["day"]
    assert today["reported"] == overview["reported_today"]
    assert today["closed"] == overview["closed_today"]
    assert (today["reported"], today["whistled"]) == (2, 1)

    default = ok(await gw.client.get(TREND, headers=viewer))
    assert default["days"] == days  # seven days unless asked
    month = ok(await gw.client.get(TREND, params={"days": 30}, headers=viewer))
    assert month["days"][-7:] == days
    assert total(month["days"], "reported") == 4


async def test_who_may_read_it_and_bad_days(gateway: Gateway) -> None:
    gw = gateway
    for role in ("viewer", "command_centre", "inspector"):
        ok(await gw.client.get(TREND, headers=gw.auth(role)))
    problem(await gw.client.get(TREND, headers=gw.auth("resident")), 403, "forbidden")
    problem(
        await gw.client.get(TREND, headers=gw.auth("department", dept="cgzf")), 403, "forbidden"
    )
    assert (await gw.client.get(TREND)).status_code == 401
    viewer = gw.auth("viewer")
    for days in ("0", "91", "-7"):
        problem(
            await gw.client.get(TREND, params={"days": days}, headers=viewer), 422, "invalid_days"
        )
    problem(
        await gw.client.get(TREND, params={"days": "week"}, headers=viewer), 422, "invalid_request"
    )
