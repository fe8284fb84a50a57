"""docs/SECURITY.md's role × endpoint matrix is what the gateway does: read from the document, checked
against `gateway.policy.POLICY`, then every cell called with a token of its role on a running gateway.

An allowed cell must succeed (each command on a case in the stage where it does); a `—` cell must be
403 as problem+json; an `own` cell is called once more on a case (or unit) of another street,
community, resident and department, where it must be 403 as well.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from uuid import UUID

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from gateway import create_app
from gateway.auth import Role
from gateway.policy import POLICY
from gateway.routers import websockets as feed_routes
from infra.settings import Settings
from infra.signing import load_or_create_signer
from projections.audit import publish_tree_head
from tests.integration.gateway.conftest import Gateway, Served
from tests.integration.gateway.matrix import (
    AWAY,
    CLAIMS,
    COMMANDS,
    HOME,
    SCOPED,
    Cell,
    Row,
    World,
    case_at,
    load_matrix,
    paths,
    query_params,
    worlds,
)

#: Generous: frames arrive in milliseconds (heartbeats each second); this only bounds a failure.
WAIT = 20.0
FORBIDDEN_CLOSE = 4003


def rows(method: str) -> list[Row]:
    return [row for row in load_matrix().values() if row.method == method]


def cells(row: Row) -> Iterator[tuple[Role, World, bool]]:
    """(role, world, must be allowed) for every call the row's cells ask for."""
    for role, cell in row.cells.items():
        for world, allowed in worlds(role, cell):
            yield role, world, allowed


def refusal(response: httpx.Response) -> str | None:
    """Why a response is not the 403 problem document a refusal must be (None: it is)."""
    if response.status_code != 403:
        return f"{response.status_code} {response.text[:200]}"
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return f"403 as {response.headers.get('content-type')}"
    if not response.json().get("code"):
        return "403 without a code"
    return None


def verdict(response: httpx.Response, allowed: bool, success: int) -> str | None:
    """None if the response is what the cell says, else what went wrong."""
    if not allowed:
        return refusal(response)
    if response.status_code != success:
        return f"{response.status_code} (expected {success}) {response.text[:200]}"
    return None


def label(row: Row, role: Role, world: World) -> str:
    where = "own" if world is HOME else "other's"
    return f"{row.endpoint} as {role} on {where}"


# --- the document and the policy ---------------------------------------------------------------


def test_the_matrix_is_the_policy() -> None:
    matrix = load_matrix()
    assert list(matrix) == list(POLICY)  # same endpoints, in the policy's order
    for name, row in matrix.items():
        assert set(row.cells) == set(Role), name
        allowed = {role for role, cell in row.cells.items() if cell.allowed}
        assert allowed == POLICY[name], name
        unscoped_own = {r for r, c in row.cells.items() if c is Cell.OWN and r not in SCOPED}
        assert not unscoped_own, f"{name}: `own` for roles without a scope {unscoped_own}"


def served_routes() -> Iterator[tuple[str, str]]:
    """(method, path) of every REST operation (from OpenAPI) and every WebSocket (`WS`)."""
    app = create_app(Settings(dev_mode=True))  # routes only: the lifespan opens nothing here
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            yield method.upper(), path
    for route in feed_routes.router.routes:
        yield "WS", getattr(route, "path", "")


def test_every_route_of_the_api_and_feeds_is_in_the_matrix() -> None:
    matrix = load_matrix().values()
    ours = [(m, p) for m, p in served_routes() if p.startswith(("/api/v1/", "/ws/"))]
    assert len(ours) > len(matrix)  # the reference row is four routes; get-case-as-of none
    missing = [f"{m} {p}" for m, p in ours if not any(row.matches(m, p) for row in matrix)]
    assert not missing


# --- commands ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_every_command_cell_is_what_the_matrix_says(gateway: Gateway) -> None:
    gw, wrong = gateway, []
    for row in rows("POST"):
        command = COMMANDS[row.endpoint]
        for role, world, allowed in cells(row):
            stage = command.stage_of(role)
            case_id = case_at(gw.service, world, stage) if stage else None
            (path,) = paths(row, world, case_id)
            response = await gw.client.post(
                path, json=command.body(role, world), headers=gw.auth(role, **CLAIMS[role])
            )
            success = 201 if case_id is None else 200
            if problem := verdict(response, allowed, success):
                wrong.append(f"{label(row, role, world)}: {problem}")
    assert not wrong, "\n".join(wrong)


# --- reads -------------------------------------------------------------------------------------


async def read_cases(gw: Gateway) -> dict[World, UUID]:
    """One whistled case per world, projected, and a signed tree head over them (for the proofs)."""
    cases = {world: case_at(gw.service, world, "whistled") for world in (HOME, AWAY)}
    await gw.settle()
    signer = load_or_create_signer(gw.settings.audit_key_file())
    await publish_tree_head(gw.resources.views, signer, gw.resources.js)
    return cases


@pytest.mark.asyncio
async def test_every_read_cell_is_what_the_matrix_says(gateway: Gateway) -> None:
    gw, wrong = gateway, []
    cases = await read_cases(gw)
    as_of = gw.clock.now().isoformat()
    for row in rows("GET"):
        for role, world, allowed in cells(row):
            params = query_params(row.endpoint, role, world, as_of)
            for path in paths(row, world, cases[world]):
                response = await gw.client.get(
                    path, params=params, headers=gw.auth(role, **CLAIMS[role])
                )
                if problem := verdict(response, allowed, 200):
                    wrong.append(f"{label(row, role, world)} {path}: {problem}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.asyncio
async def test_a_department_reads_nothing_of_another_departments_work(gateway: Gateway) -> None:
    """The matrix's `own` cells spelled out for the case that matters most: cgzf is not on `away`."""
    gw = gateway
    cases = await read_cases(gw)
    cgzf = gw.auth("department", dept="cgzf")
    away = f"/api/v1/cases/{cases[AWAY]}"
    for path in (away, f"{away}/history", f"{away}/proof", "/api/v1/departments/zj/performance"):
        assert refusal(await gw.client.get(path, headers=cgzf)) is None, path
    response = await gw.client.get("/api/v1/cases", params={"department": "zj"}, headers=cgzf)
    assert refusal(response) is None
    command = await gw.client.post(f"{away}/report-in", json={"mode": "on_site"}, headers=cgzf)
    assert command.json()["code"] == "case_out_of_scope"  # not 409 `not_whistled`: no probing


# --- live feeds --------------------------------------------------------------------------------


async def first_frame_or_close(served: Served, path: str, token: str) -> dict[str, object] | int:
    """The feed's first frame, or the close code it was refused with."""
    subprotocols = [Subprotocol("bearer"), Subprotocol(token)]
    async with connect(f"{served.ws_url}{path}?since=0", subprotocols=subprotocols) as websocket:
        try:
            frame: dict[str, object] = json.loads(await asyncio.wait_for(websocket.recv(), WAIT))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else -1  # -1: closed without a code
        return frame


@pytest.mark.asyncio
async def test_every_feed_cell_is_what_the_matrix_says(served: Served) -> None:
    gw, wrong = served.gateway, []
    cases = {world: case_at(gw.service, world, "whistled") for world in (HOME, AWAY)}
    await gw.settle()  # the relay and the department feeds have made their streams
    for row in rows("WS"):
        for role, world, allowed in cells(row):
            (path,) = paths(row, world, cases[world])
            got = await first_frame_or_close(served, path, gw.token(role, **CLAIMS[role]))
            fine = isinstance(got, dict) and got.get("type") in ("event", "heartbeat")
            if fine != allowed or (not allowed and got != FORBIDDEN_CLOSE):
                wrong.append(f"{label(row, role, world)} {path}: {got}")
    assert not wrong, "\n".join(wrong)
