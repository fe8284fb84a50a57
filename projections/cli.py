"""`whistleloop project [NAMES]` and `projections rebuild`: run or replay projectors; status rows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from rich.console import Console
from rich.progress import TaskID
from rich.table import Table

from domain.reference import load_reference
from infra.leader import projection_lock
from infra.logs import configure_logging
from infra.nats.connection import connect_once, connect_service
from infra.nats.streams import DEPT_STREAM, EVENTS_STREAM, ensure_streams, settled
from infra.settings import Settings
from infra.signals import until_stopped
from infra.store import open_service
from infra.terminal import counted_progress
from projections import registry
from projections.audit import Audit, sign_while_idle
from projections.base import Projection
from projections.control import status_rows
from projections.dept_feeds import NAME as DEPT_FEEDS
from projections.dept_feeds import ensure_department_consumers
from projections.parallel_rebuild import Progress as ParallelProgress
from projections.parallel_rebuild import rebuild_parallel
from projections.rebuild import (
    NOT_REBUILDABLE,
    RebuildError,
    RebuildSummary,
    rebuild_from_store,
    rebuild_from_stream,
)
from projections.runner import ProjectorRunner
from projections.views_db import open_views_engine

log = logging.getLogger(__name__)


def run_projectors(settings: Settings, names: Sequence[str]) -> None:
    """Runs the named projections (all registered ones when none are named) until a signal."""
    configure_logging()
    projections = registry.select(names, settings)
    asyncio.run(_run(settings, projections))


async def _run(settings: Settings, projections: list[Projection]) -> None:
    await until_stopped(partial(serve, settings, projections))


async def serve(settings: Settings, projections: list[Projection], stop: asyncio.Event) -> None:
    """Runs the projections (and the audit's idle signer) until `stop` is set."""
    nc = await connect_service(settings, "whistleloop-projector")
    engine = open_views_engine(settings)
    try:
        js = nc.jetstream()
        await _ensure_streams(js, settings.nats_replicas)
        if any(p.name == DEPT_FEEDS for p in projections):
            departments = load_reference().departments
            await settled(lambda: ensure_department_consumers(js, departments))
        log.info("projectors starting", extra={"projections": [p.name for p in projections]})
        await asyncio.gather(
            ProjectorRunner(nc, engine, projections, locks=partial(projection_lock, engine)).run(
                stop
            ),
            *(
                sign_while_idle(engine, p.signer, js, settings.audit_head_interval, stop)
                for p in projections
                if isinstance(p, Audit) and p.signer is not None
            ),
        )
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()
        engine.dispose()
        log.info("projectors stopped")


async def _ensure_streams(js: JetStreamContext, replicas: int = 1) -> None:
    """Creates the streams only when one is missing (a projector user may not update them)."""
    for stream in (EVENTS_STREAM, DEPT_STREAM):
        try:
            await settled(lambda: js.stream_info(stream))  # noqa: B023 (awaited in this pass)
        except NotFoundError:
            await ensure_streams(js, replicas)
            return


def projections_status(settings: Settings) -> list[dict[str, Any]]:
    """Position, counts and state of every projection that has run (for a CLI or `/readyz`)."""
    engine = open_views_engine(settings)
    try:
        return status_rows(engine)
    finally:
        engine.dispose()


def rebuild(
    settings: Settings, names: Sequence[str], from_store: bool, console: Console, jobs: int = 1
) -> int:
    """Rebuilds the named projections (all rebuildable ones when none are named); an exit code."""
    configure_logging()
    chosen = names or [n for n in registry.registered(settings) if n not in NOT_REBUILDABLE]
    try:
        projections = registry.select(chosen, settings)
        with _progress_bar(console) as progress:
            if jobs > 1 and len(projections) > 1:
                summaries = rebuild_parallel(
                    settings, projections, from_store, jobs, rebuild_one, progress
                )
            else:
                summaries = asyncio.run(_rebuild_all(settings, projections, from_store, progress))
    except (KeyError, RebuildError) as error:
        console.print(f"[red]error:[/red] {error.args[0]}")
        return 1
    except nats.errors.NoServersError:
        console.print(f"[red]error:[/red] no NATS server answers at {settings.nats_servers()}")
        return 2
    table = Table(title=f"rebuilt from the {'event store' if from_store else 'stream WL_EVENTS'}")
    for column in ("projection", "events", "applied", "ignored", "seconds", "events/s"):
        table.add_column(column, justify="left" if column == "projection" else "right")
    for s in summaries:
        table.add_row(
            s.name,
            f"{s.events:,}",
            f"{s.applied:,}",
            f"{s.ignored:,}",
            f"{s.seconds:.1f}",
            f"{s.rate:,.0f}",
        )
    console.print(table)
    return 0


@contextlib.contextmanager
def _progress_bar(console: Console) -> Iterator[ParallelProgress]:
    """One bar per projection, fed by name (from this process or from the children's queue)."""
    with counted_progress(console, 18) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=None)
            bar.update(tasks[name], completed=done, total=max(total, 1))

        yield progress


def rebuild_one(
    settings: Settings, name: str, from_store: bool, progress: ParallelProgress
) -> RebuildSummary:
    """A child's work under `--jobs`: the sequential rebuild of one projection."""
    configure_logging()
    projections = registry.select([name], settings)
    return asyncio.run(_rebuild_all(settings, projections, from_store, progress))[0]


async def _rebuild_all(
    settings: Settings, projections: list[Projection], from_store: bool, progress: ParallelProgress
) -> list[RebuildSummary]:
    nc = await connect_once(settings, "whistleloop-rebuild")
    engine = open_views_engine(settings)
    service = open_service(settings) if from_store else None
    summaries = []
    try:
        await _ensure_streams(nc.jetstream(), settings.nats_replicas)
        for projection in projections:

            def report(done: int, total: int, name: str = projection.name) -> None:
                progress(name, done, total)

            if service is not None:
                summary = await rebuild_from_store(nc, engine, service, projection, report)
            else:
                summary = await rebuild_from_stream(nc, engine, projection, report)
            summaries.append(summary)
    finally:
        if service is not None:
            service.close()
        with contextlib.suppress(Exception):
            await nc.drain()
        engine.dispose()
    return summaries
