"""`create_app(settings)`: the FastAPI gateway, built from settings with nothing opened at import.

The lifespan opens the store, the read models and NATS (`gateway.resources`); the middleware bounds
request bodies and honours `Idempotency-Key`; every error becomes an RFC 9457 problem document.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from domain.clock import Clock
from gateway import problems
from gateway.body_limit import BodyLimit
from gateway.idempotency import Idempotency
from gateway.rate_limit import RateLimit
from gateway.resources import close_resources, open_resources
from gateway.routers import commands, health, open311, queries, websockets
from infra.settings import Settings

DESCRIPTION = """
The gateway of **whistleloop**, event-sourced case tracking for 街乡吹哨、部门报到.

Commands (`POST /api/v1/cases…`) become immutable events in the event store; queries read the
projections' read models; `/ws/…` push live feeds from NATS JetStream; `/open311/v2` speaks
Open311 GeoReport v2. Authenticate with `Authorization: Bearer <token>` (`whistleloop token issue`);
docs/SECURITY.md says which role may call what. Errors are RFC 9457 `application/problem+json`
with a stable `code`. Every POST honours `Idempotency-Key`; writes are limited per caller
(429 with `Retry-After`).
"""


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.resources = await open_resources(settings, clock)
        try:
            yield
        finally:
            await close_resources(app.state.resources)

    app = FastAPI(
        title="whistleloop gateway",
        version=version("whistleloop"),
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    problems.install(app)
    app.add_middleware(Idempotency, max_body=settings.gateway_max_body)
    app.add_middleware(
        RateLimit,
        rate=settings.gateway_write_rate,
        burst=settings.gateway_write_burst,
        max_body=settings.gateway_max_body,
    )
    app.add_middleware(problems.StoreOutage)
    app.add_middleware(BodyLimit, max_bytes=settings.gateway_max_body)  # outermost: runs first
    for module in (commands, queries, open311, websockets, health):
        app.include_router(module.router)
    return app
