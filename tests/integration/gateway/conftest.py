"""Gateway fixtures: the real app on a real store, views database and nats-server, with the relay and
every projector running beside it in the test's event loop, as `whistleloop up` runs them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from domain.clock import ManualClock
from domain.service import CaseService
from gateway import create_app
from gateway.auth import Role, issue_token
from gateway.resources import Resources
from infra.nats.server import NatsServer
from infra.relay import Relay
from infra.settings import Settings
from infra.store import open_service
from projections import registry
from projections.cli import serve as serve_projectors
from projections.control import status_rows
from tests.integration.projections.support import eventually


class Running:
    """What a test needs of a running gateway, however it is served: its settings and resources."""

    settings: Settings

    @property
    def resources(self) -> Resources:
        raise NotImplementedError

    @property
    def service(self) -> CaseService:
        return self.resources.service

    def token(
        self,
        role: str,
        *,
        dept: str | None = None,
        street: str | None = None,
        community: str | None = None,
        subject: str | None = None,
    ) -> str:
        return issue_token(
            self.settings,
            Role(role),
            dept=dept,
            street=street,
            community=community,
            subject=subject,
        )

    def auth(self, role: str, **scope: str) -> dict[str, str]:
        """`Authorization` headers for a token of `role` (scope: dept=, street=, community=, subject=)."""
        return {"Authorization": f"Bearer {self.token(role, **scope)}"}

    def caught_up(self) -> Callable[[], bool]:
        """Whether every projection has applied everything the store holds now."""
        last = self.service.recorder.max_notification_id() or 0
        names = set(registry.registered(self.settings))

        def check() -> bool:
            rows = {r["name"]: r for r in status_rows(self.resources.views)}
            return names <= rows.keys() and all(
                rows[n]["last_notification_id"] >= last for n in names
            )

        return check


@dataclass
class Gateway(Running):
    """A running gateway and what a test needs around it."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    clock: ManualClock

    @property
    def resources(self) -> Resources:
        resources: Resources = self.app.state.resources
        return resources

    async def settle(self, timeout: float = 30.0) -> None:
        """Waits until every projection has applied everything in the store."""
        await eventually(self.caught_up(), "projections to catch up with the store", timeout)


def gateway_settings(tmp_path: Path, nats_server: NatsServer, **overrides: Any) -> Settings:
    return Settings(
        var_dir=tmp_path / "var",
        nats_url=nats_server.url,
        dev_mode=True,
        relay_poll_interval=0.05,
        **overrides,
    )


@contextlib.asynccontextmanager
async def pipeline(settings: Settings) -> AsyncIterator[None]:
    """The relay and every projector, as `whistleloop up` runs them, until the block ends."""
    stop = asyncio.Event()
    relay_service = open_service(settings)
    tasks = [
        asyncio.create_task(Relay(relay_service, settings).run(stop)),
        asyncio.create_task(serve_projectors(settings, registry.select([], settings), stop)),
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=15)
        for task in tasks:
            if not task.done():
                task.cancel()
        relay_service.close()


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings, clock: ManualClock) -> AsyncIterator[Gateway]:
    app = create_app(settings, clock=clock)
    async with LifespanManager(app, startup_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://gateway") as client,
            pipeline(settings),
        ):
            yield Gateway(app, client, settings, clock)


@pytest_asyncio.fixture
async def gateway(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock
) -> AsyncIterator[Gateway]:
    """The gateway on SQLite stores, with relay and projectors running."""
    async with running_gateway(gateway_settings(tmp_path, nats_server), clock) as gw:
        yield gw


@pytest_asyncio.fixture
async def gateway_any_store(
    store_settings: Settings, tmp_path: Path, nats_server: NatsServer, clock: ManualClock
) -> AsyncIterator[Gateway]:
    """The gateway on each kind of event store (SQLite, PostgreSQL)."""
    settings = gateway_settings(
        tmp_path,
        nats_server,
        database_url=store_settings.database_url,
        database_schema=store_settings.database_schema,
    )
    async with running_gateway(settings, clock) as gw:
        yield gw


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Served:
    """The gateway behind a real uvicorn server (for WebSocket clients)."""

    gateway: Gateway
    base_url: str  # http://127.0.0.1:<port>

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http")


@pytest_asyncio.fixture
async def served(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock
) -> AsyncIterator[Served]:
    """The gateway served by uvicorn on a free port, with relay and projectors running."""
    settings = gateway_settings(tmp_path, nats_server, ws_heartbeat=1.0)
    app = create_app(settings, clock=clock)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, "uvicorn started", 30)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as client, pipeline(settings):
            yield Served(Gateway(app, client, settings, clock), base)
    finally:
        server.should_exit = True
        await asyncio.wait([task], timeout=15)
