"""The projector process the kill -9 test starts, kills and restarts (kept light to import).

    python -m tests.integration.projections.worker NATS_URL VIEWS_URL NAME BATCH DELAY

Runs a ProjectorRunner with one CountingProjection until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from infra.logs import configure_logging
from infra.nats.connection import connect
from infra.settings import Settings
from projections.runner import ProjectorRunner, RunnerOptions
from projections.views_db import open_views_engine
from tests.integration.projections.counting import CountingProjection


async def main(nats_url: str, views_url: str, name: str, batch: int, delay: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    engine = open_views_engine(Settings(views_database_url=views_url))
    projection = CountingProjection(name, delay=delay)
    projection.create_tables(engine)
    nc = await connect(nats_url, name=f"worker-{name}")
    try:
        options = RunnerOptions(batch=batch, fetch_timeout=0.2)
        await ProjectorRunner(nc, engine, [projection], options).run(stop)
    finally:
        await nc.close()
        engine.dispose()


if __name__ == "__main__":
    configure_logging("WARNING")
    url, views, name, batch, delay = sys.argv[1:6]
    asyncio.run(main(url, views, name, int(batch), float(delay)))
