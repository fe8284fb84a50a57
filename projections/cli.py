"""`whistleloop project [NAMES]`: run projectors until SIGINT/SIGTERM; and their status rows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from domain.reference import load_reference
from infra.logs import configure_logging
from infra.nats.connection import connect
from infra.nats.streams import DEPT_STREAM, EVENTS_STREAM, ensure_streams
from infra.settings import Settings
from projections import registry
from projections.base import Projection
from projections.control import status_rows
from projections.dept_feeds import NAME as DEPT_FEEDS
from projections.dept_feeds import ensure_department_consumers
from projections.runner import ProjectorRunner
from projections.views_db import open_views_engine

log = logging.getLogger(__name__)


def run_projectors(settings: Settings, names: Sequence[str]) -> None:
    """Runs the named projections (all registered ones when none are named) until a signal."""
    configure_logging()
    projections = registry.select(names)
    asyncio.run(_run(settings, projections))


async def _run(settings: Settings, projections: list[Projection]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    nc = await connect(
        settings.nats_servers(),
        name="whistleloop-projector",
        user=settings.nats_user or None,
        password=settings.nats_password or None,
    )
    engine = open_views_engine(settings)
    try:
        js = nc.jetstream()
        await _ensure_streams(js)
        if any(p.name == DEPT_FEEDS for p in projections):
            await ensure_department_consumers(js, load_reference().departments)
        log.info("projectors starting", extra={"projections": [p.name for p in projections]})
        await ProjectorRunner(nc, engine, projections).run(stop)
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()
        engine.dispose()
        log.info("projectors stopped")


async def _ensure_streams(js: JetStreamContext) -> None:
    """Creates the streams only when one is missing (a projector user may not update them)."""
    for stream in (EVENTS_STREAM, DEPT_STREAM):
        try:
            await js.stream_info(stream)
        except NotFoundError:
            await ensure_streams(js)
            return


def projections_status(settings: Settings) -> list[dict[str, Any]]:
    """Position, counts and state of every projection that has run (for a CLI or `/readyz`)."""
    engine = open_views_engine(settings)
    try:
        return status_rows(engine)
    finally:
        engine.dispose()
