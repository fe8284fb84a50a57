"""Dashboard fixtures: a real gateway stack (uvicorn + relay + projectors + nats-server) in a thread
of its own, so that Streamlit's `AppTest`, which blocks the test's thread, can call it over HTTP."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import streamlit as st
import uvicorn
from streamlit.testing.v1 import AppTest

from domain.clock import ManualClock
from gateway import create_app
from gateway.resources import Resources
from infra.nats.server import NatsServer
from infra.settings import Settings
from tests.conftest import START
from tests.integration.gateway.conftest import Running, free_port, gateway_settings, pipeline

APP = Path(__file__).resolve().parents[3] / "dashboard" / "app.py"


@dataclass
class Stack(Running):
    """A running gateway with relay and projectors, served on `base_url` from another thread."""

    base_url: str
    settings: Settings
    clock: ManualClock
    stack_resources: Resources
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def resources(self) -> Resources:
        return self.stack_resources

    def api(self, path: str, token: str | None = None, **params: Any) -> Any:
        """What the gateway answers (as the dashboard would ask it, with a viewer token)."""
        headers = {"Authorization": f"Bearer {token or self.token('viewer')}"}
        response = httpx.get(self.base_url + path, params=params, headers=headers, timeout=10)
        response.raise_for_status()
        return response.json()

    def settle(self, timeout: float = 30.0) -> None:
        """Waits until every projection has applied everything in the store."""
        check, deadline = self.caught_up(), time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError("projections did not catch up with the store")
            time.sleep(0.05)

    def app(self, token: str | None = None, inspector: str | None = None) -> AppTest:
        """The dashboard as `AppTest`, configured for this stack (fresh caches each time)."""
        os.environ["WL_DASHBOARD_GATEWAY_URL"] = self.base_url
        os.environ["WL_DASHBOARD_TOKEN"] = token if token is not None else self.token("viewer")
        os.environ["WL_DASHBOARD_INSPECTOR_TOKEN"] = (
            inspector if inspector is not None else self.token("inspector")
        )
        st.cache_resource.clear()
        st.cache_data.clear()
        return AppTest.from_file(str(APP), default_timeout=30)

    def open_page(
        self, path: str, token: str | None = None, inspector: str | None = None, lang: str = "zh"
    ) -> AppTest:
        """The dashboard run once, then switched to `path` (e.g. "pages/cases.py") and run there.

        AppTest runs a switched-to page without the sidebar, so the language is set the way its
        radio sets it: in the session state.
        """
        at = self.app(token, inspector)
        at.session_state["lang"] = lang
        at.run()
        at.switch_page(path)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at


def _serve(
    settings: Settings,
    clock: ManualClock,
    port: int,
    ready: Callable[[Resources], None],
    stop: threading.Event,
) -> None:
    async def main() -> None:
        app = create_app(settings, clock=clock)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        async with pipeline(settings):
            ready(app.state.resources)
            while not stop.is_set():
                await asyncio.sleep(0.1)
        server.should_exit = True
        await asyncio.wait([task], timeout=15)

    asyncio.run(main())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack per test module (seeding is the module's job); stopped and cleaned afterwards."""
    tmp = tmp_path_factory.mktemp("dashboard")
    server = NatsServer(tmp / "nats").start()
    settings = gateway_settings(tmp, server)
    clock = ManualClock(START)
    port = free_port()
    found: list[Resources] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=_serve, args=(settings, clock, port, found.append, stop), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 60
    while not found:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the gateway stack did not start")
        time.sleep(0.05)
    try:
        yield Stack(f"http://127.0.0.1:{port}", settings, clock, found[0], stop)
    finally:
        stop.set()
        thread.join(timeout=30)
        server.kill()
        for name in (
            "WL_DASHBOARD_GATEWAY_URL",
            "WL_DASHBOARD_TOKEN",
            "WL_DASHBOARD_INSPECTOR_TOKEN",
        ):
            os.environ.pop(name, None)
