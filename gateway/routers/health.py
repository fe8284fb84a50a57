"""`/healthz` (the process answers), `/readyz` (its dependencies answer), `/metrics` (Prometheus).

Readiness asks each dependency with a short timeout, so a hung database or NATS server makes the
probe fail quickly instead of hanging the load balancer's check. A halted projection makes the gateway
not ready: its views are no longer moving, and the operator must act (`whistleloop projections`).
Lag is reported, never judged: how much lag is too much is the operator's alert rule.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from nats.js.errors import NotFoundError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text

from gateway.deps import ResourcesDep
from gateway.resources import Resources
from infra.event_codec import HEADER_NOTIFICATION
from infra.nats.streams import EVENTS_STREAM, EVENTS_SUBJECTS
from infra.store import engine_of
from projections.control import status_rows
from projections.tracking import HALTED

router = APIRouter(tags=["health"])

#: Seconds each readiness check may take.
CHECK_TIMEOUT = 2.0


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Check(BaseModel):
    ok: bool
    detail: str = ""


class ProjectionState(BaseModel):
    name: str
    state: str = Field(examples=["running"])
    last_notification_id: int
    lag_events: int = Field(description="Events in the store this projection has not applied yet.")
    error: str | None = None


class Readiness(BaseModel):
    ready: bool
    store: Check
    nats: Check
    last_notification_id: int = Field(description="The newest event in the store.")
    relayed_notification_id: int | None = Field(
        None, description="The newest event on WL_EVENTS (None when NATS did not answer)."
    )
    projections: list[ProjectionState]


@router.get("/healthz", summary="Liveness: the process answers", operation_id="healthz")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: store, NATS and projections",
    operation_id="readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: see which check failed"}},
)
async def readyz(resources: ResourcesDep) -> JSONResponse:
    readiness = await readiness_of(resources)
    return JSONResponse(readiness.model_dump(), status_code=200 if readiness.ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    operation_id="metrics",
    response_class=Response,
    responses={
        200: {
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format",
        }
    },
)
async def metrics(resources: ResourcesDep) -> Response:
    readiness = await readiness_of(resources)
    m = resources.metrics
    m.store_notification.set(readiness.last_notification_id)
    if readiness.relayed_notification_id is not None:
        m.relay_lag.set(readiness.last_notification_id - readiness.relayed_notification_id)
    for projection in readiness.projections:
        m.projection_lag.labels(projection=projection.name).set(projection.lag_events)
        m.projection_halted.labels(projection=projection.name).set(projection.state == HALTED)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


async def readiness_of(resources: Resources) -> Readiness:
    store, last = await _store(resources)
    nats, relayed = await _nats(resources)
    projections = await _projections(resources, last)
    ready = store.ok and nats.ok and all(p.state != HALTED for p in projections)
    return Readiness(
        ready=ready,
        store=store,
        nats=nats,
        last_notification_id=last,
        relayed_notification_id=relayed,
        projections=projections,
    )


async def _store(resources: Resources) -> tuple[Check, int]:
    def probe() -> int:
        with engine_of(resources.service).connect() as conn:
            conn.execute(text("SELECT 1"))
        return resources.service.recorder.max_notification_id() or 0

    try:
        last = await asyncio.wait_for(asyncio.to_thread(probe), CHECK_TIMEOUT)
    except Exception as error:
        return Check(ok=False, detail=_describe(error)), 0
    return Check(ok=True), last


async def _nats(resources: Resources) -> tuple[Check, int | None]:
    if not resources.nc.is_connected:
        return Check(ok=False, detail="not connected"), None
    try:
        last = await asyncio.wait_for(
            resources.js.get_last_msg(EVENTS_STREAM, EVENTS_SUBJECTS), CHECK_TIMEOUT
        )
    except NotFoundError:
        return Check(ok=True, detail="WL_EVENTS is empty"), 0
    except Exception as error:
        return Check(ok=False, detail=_describe(error)), None
    notification = dict(last.headers or {}).get(HEADER_NOTIFICATION, "")
    return Check(ok=True), int(notification) if notification.isdigit() else None


async def _projections(resources: Resources, last: int) -> list[ProjectionState]:
    try:
        rows = await asyncio.wait_for(
            asyncio.to_thread(status_rows, resources.views), CHECK_TIMEOUT
        )
    except Exception:
        return []
    return [_projection(row, last) for row in rows]


def _projection(row: dict[str, Any], last: int) -> ProjectionState:
    applied = int(row["last_notification_id"] or 0)
    return ProjectionState(
        name=row["name"],
        state=row["state"] or "running",
        last_notification_id=applied,
        lag_events=max(0, last - applied),
        error=row["error"],
    )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300] or type(error).__name__
