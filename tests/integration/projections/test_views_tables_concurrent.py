"""`whistleloop up` starts the projector, the SLA clock and the gateway at once on a fresh views
database; each creates the tables it finds missing. None of them may fail because another one got
there first (the projector used to crash with "table projection_tracking already exists")."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier

from sqlalchemy import inspect

import projections.registry  # noqa: F401  (every projection's tables register on import)
from infra.settings import Settings
from projections.views_db import create_views_tables, metadata, open_views_engine

PROCESSES = 6


def _create(settings: Settings, barrier: Barrier) -> None:
    engine = open_views_engine(settings)
    try:
        barrier.wait(timeout=60)
        create_views_tables(engine)
    finally:
        engine.dispose()


def test_processes_starting_together_all_create_the_tables(views_settings: Settings) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    workers = [
        context.Process(target=_create, args=(views_settings, barrier)) for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    engine = open_views_engine(views_settings)
    try:
        assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
