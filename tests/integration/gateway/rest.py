"""A small REST driver for gateway tests: report a case, run a command, drive the whole loop.

It speaks only HTTP (the REST contract), so a test that uses it checks the gateway as clients see
it; each helper fails the test with the problem document when the gateway refuses.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from tests.integration.gateway.conftest import Gateway

CASES = "/api/v1/cases"
#: The standard report: a resident's 12345 call about a rooftop build in 建外 / 永安里.
REPORT: dict[str, Any] = {
    "source": "hotline_12345",
    "street": "jianwai",
    "community": "jianwai_c01",
    "grid": "jianwai_c01_g01",
    "title": "楼顶违建",
    "description": "3 号楼楼顶正在搭建彩钢房",
    "address": "建国门外大街 1 号院 3 号楼",
}
RESIDENT = "r-1001"
STEP = timedelta(minutes=5)


def _refused(response: httpx.Response) -> str:
    return f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"


async def report(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> str:
    """Reports a case (the standard report, any field overridden); returns its id."""
    response = await client.post(CASES, json={**REPORT, **fields}, headers=headers)
    assert response.status_code == 201, _refused(response)
    case_id: str = response.json()["case_id"]
    return case_id


async def command(
    client: httpx.AsyncClient, headers: dict[str, str], case_id: str, action: str, **body: Any
) -> int:
    """Runs `POST /cases/{case_id}/{action}`; returns the case's new version."""
    response = await client.post(f"{CASES}/{case_id}/{action}", json=body, headers=headers)
    assert response.status_code == 200, _refused(response)
    version: int = response.json()["version"]
    return version


async def full_loop(gw: Gateway) -> str:
    """One case around the closed loop over REST, each step by the role that owns it; its id.

    Report (a resident) → accept → whistle (lead cgzf, assisting ghzr, CG-001) → both report in →
    cgzf reports handling → close → the resident rates → the street scores both departments.
    The clock moves one `STEP` before each command, so events have distinct times. 9 versions.
    """
    c = gw.client
    resident = gw.auth("resident", subject=RESIDENT)
    street = gw.auth("street", street="jianwai")
    cgzf, ghzr = gw.auth("department", dept="cgzf"), gw.auth("department", dept="ghzr")
    case_id = await report(c, resident)
    steps: list[tuple[dict[str, str], str, dict[str, Any]]] = [
        (street, "accept", {"note": "属实，受理"}),
        (street, "whistle", {"lead": "cgzf", "assisting": ["ghzr"], "duty_item": "CG-001"}),
        (cgzf, "report-in", {"mode": "on_site", "note": "已到场"}),
        (ghzr, "report-in", {"mode": "remote"}),
        (cgzf, "report-handling", {"result": "resolved", "note": "已拆除"}),
        (street, "close", {"note": "现场核查已拆除"}),
        (resident, "rate", {"satisfaction": "satisfied", "solved": True}),
        (street, "rate", {"scores": {"cgzf": 85, "ghzr": 90}}),
    ]
    for headers, action, body in steps:
        gw.clock.advance(STEP)
        await command(c, headers, case_id, action, **body)
    return case_id
