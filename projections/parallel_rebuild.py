"""`projections rebuild --jobs N`: one child process per projection, N at a time.

A rebuild is CPU-bound Python (decode, apply), so one process uses one core; a 10⁶-event rebuild
of every projection only fits its ten minutes with the projections side by side.

On PostgreSQL the children write the views database directly. SQLite has one writer at a time and
a runner decodes and applies inside its write transaction, so children sharing the file would take
turns for nearly all of their work: there each child rebuilds into a side file of its own
(`<views>.rebuild-<name>.db`), and the finished tables are copied into the views database in one
transaction per projection (`ATTACH` + `INSERT … SELECT`, seconds for 10⁶ rows).
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, insert, select
from sqlalchemy.engine import make_url

from infra.settings import Settings
from projections.base import Projection
from projections.rebuild import RebuildSummary
from projections.views_db import (
    create_views_tables,
    open_views_engine,
    projection_skips,
    projection_status,
    projection_tracking,
    writing,
)

#: (projection, done, total): how a child's progress reaches the parent's progress bar.
Progress = Callable[[str, int, int], None]
#: The sequential rebuild of one process, run in each child for its one projection.
RebuildOne = Callable[[Settings, str, bool, Progress], RebuildSummary]

_progress_queue: Any = None


def rebuild_parallel(
    settings: Settings,
    projections: Sequence[Projection],
    from_store: bool,
    jobs: int,
    rebuild_one: RebuildOne,
    progress: Progress,
) -> list[RebuildSummary]:
    """Rebuilds `projections` in up to `jobs` child processes (each builds its own by name); the
    summaries in their order.

    A failed child does not stop the others: the rest are finished (and on SQLite copied in), then
    the first failure is raised; a failed projection keeps its old tables and its side file.
    """
    names = [projection.name for projection in projections]
    engine = open_views_engine(settings)
    try:
        create_views_tables(engine)
        sides = _side_files(engine, names)
        for name, side in sides.items():
            _prepare_side(engine, side, name)
        child_settings = {n: _with_views(settings, sides.get(n)) for n in names}
        futures = _run_children(child_settings, from_store, jobs, rebuild_one, progress)
        for projection, future in zip(projections, futures, strict=True):
            if projection.name in sides and future.exception() is None:
                _swap_in(engine, sides[projection.name], projection)
        return [future.result() for future in futures]  # the first failure, once all are in
    finally:
        engine.dispose()


def _run_children(
    child_settings: dict[str, Settings],
    from_store: bool,
    jobs: int,
    rebuild_one: RebuildOne,
    progress: Progress,
) -> list[Future[RebuildSummary]]:
    # spawn, not fork: the parent may hold threads (SQLAlchemy pools, rich's refresher).
    context = multiprocessing.get_context("spawn")
    updates = context.Queue()
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_init_child, initargs=(updates,)
    ) as pool:
        futures = [
            pool.submit(_child, rebuild_one, settings, name, from_store)
            for name, settings in child_settings.items()
        ]
        while not all(f.done() for f in futures):
            _drain(updates, progress, wait=0.2)
        _drain(updates, progress, wait=0)
    return futures


def _init_child(updates: Any) -> None:
    global _progress_queue
    _progress_queue = updates


def _child(
    rebuild_one: RebuildOne, settings: Settings, name: str, from_store: bool
) -> RebuildSummary:
    def report(projection: str, done: int, total: int) -> None:
        _progress_queue.put((projection, done, total))

    return rebuild_one(settings, name, from_store, report)


def _drain(updates: Any, progress: Progress, wait: float) -> None:
    try:
        first = updates.get(timeout=wait) if wait else updates.get_nowait()
        progress(*first)
        while True:
            progress(*updates.get_nowait())
    except queue.Empty:
        return


# --- SQLite: side files ---------------------------------------------------------------------------


def _side_files(engine: Engine, names: Sequence[str]) -> dict[str, Path]:
    if engine.dialect.name != "sqlite" or len(names) < 2:
        return {}
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:":
        return {}
    views = Path(database)
    return {name: views.with_name(f"{views.stem}.rebuild-{name}.db") for name in names}


def _with_views(settings: Settings, side: Path | None) -> Settings:
    if side is None:
        return settings
    return settings.model_copy(update={"views_database_url": f"sqlite:///{side}"})


def _prepare_side(engine: Engine, side: Path, name: str) -> None:
    """A fresh side file with the views tables and the operator's recorded skips for `name`."""
    _remove(side)
    side_engine = open_views_engine(Settings(views_database_url=f"sqlite:///{side}"))
    try:
        create_views_tables(side_engine)
        with engine.connect() as conn:
            skips = conn.execute(
                select(projection_skips).where(projection_skips.c.name == name)
            ).all()
        if skips:
            with side_engine.begin() as conn:
                conn.execute(insert(projection_skips), [row._asdict() for row in skips])
    finally:
        side_engine.dispose()


def _swap_in(engine: Engine, side: Path, projection: Projection) -> None:
    """Replaces the projection's tables, tracking and status rows with the side file's, at once."""
    with writing(engine), engine.connect() as conn:
        conn.exec_driver_sql("ATTACH DATABASE ? AS side", (str(side),))
        conn.commit()  # ATTACH is no write: ends SQLAlchemy's autobegun transaction only
        try:
            with conn.begin():
                for table in projection.tables:
                    _copy(conn, table)
                for table in (projection_tracking, projection_status):
                    _copy(conn, table, projection.name)
        finally:
            conn.exec_driver_sql("DETACH DATABASE side")
            conn.commit()
    _remove(side)


def _copy(conn: Connection, table: Table, name: str | None = None) -> None:
    """The side file's rows of `table` (only `name`'s, for the per-projection bookkeeping) in
    place of the views database's."""
    columns = ", ".join(f'"{c.name}"' for c in table.columns)
    select_side = f'SELECT {columns} FROM side."{table.name}"'
    if name is None:
        conn.execute(delete(table))
        conn.exec_driver_sql(f'INSERT INTO main."{table.name}" ({columns}) {select_side}')
        return
    conn.execute(delete(table).where(table.c.name == name))
    conn.exec_driver_sql(
        f'INSERT INTO main."{table.name}" ({columns}) {select_side} WHERE name = ?', (name,)
    )


def _remove(side: Path) -> None:
    """The side file and SQLite's WAL and shared-memory files beside it."""
    for path in (side, side.with_name(side.name + "-wal"), side.with_name(side.name + "-shm")):
        path.unlink(missing_ok=True)
