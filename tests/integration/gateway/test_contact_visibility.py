"""A resident's contact details reach the roles that act on the case, never the viewer (the
dashboard's token): in case history and on the live command-centre feed, over a real WebSocket."""

from __future__ import annotations

import pytest

from tests.integration.gateway.conftest import Served
from tests.integration.gateway.rest import CASES, REPORT
from tests.integration.gateway.test_websockets import events_until, feed, streams_ready

pytestmark = pytest.mark.asyncio

CONTACT = {"name": "王女士", "phone": "13912345678"}


async def test_the_viewer_never_sees_contact_details(served: Served) -> None:
    gw = served.gateway
    await streams_ready(gw)
    viewer, centre = gw.token("viewer"), gw.token("command_centre")
    street = gw.auth("street", street="jianwai")
    async with (
        feed(served, "/ws/command-centre", viewer) as viewer_feed,
        feed(served, "/ws/command-centre", centre) as centre_feed,
    ):
        created = await gw.client.post(CASES, json=REPORT | {"contact": CONTACT}, headers=street)
        assert created.status_code == 201, created.text
        case_id = created.json()["case_id"]
        (seen_by_viewer,) = await events_until(viewer_feed, "CaseReported", case_id)
        (seen_by_centre,) = await events_until(centre_feed, "CaseReported", case_id)
    assert seen_by_centre["event"]["payload"]["contact"] == CONTACT
    assert seen_by_viewer["event"]["payload"]["contact"] is None
    assert CONTACT["phone"] not in str(seen_by_viewer)

    await gw.settle()
    for role, shown in (("command_centre", CONTACT), ("inspector", CONTACT), ("viewer", None)):
        history = await gw.client.get(f"{CASES}/{case_id}/history", headers=gw.auth(role))
        assert history.status_code == 200, history.text
        assert history.json()[0]["payload"]["contact"] == shown, role
    own = await gw.client.get(f"{CASES}/{case_id}/history", headers=street)
    assert own.json()[0]["payload"]["contact"] == CONTACT
