"""What a running gateway holds open: the store, the read models, NATS; opened by the app's lifespan.

Nothing here is created at import time: `open_resources` builds it all from settings, and `close`
gives it back, so tests run many gateways in one process and each stops cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy import Engine

from domain.clock import Clock
from domain.reference import ReferenceData
from domain.service import CaseService
from gateway.auth import check_secret
from gateway.idempotency import IdempotencyStore
from gateway.metrics import Metrics
from infra.nats.connection import connect_service
from infra.relay import Nudger
from infra.settings import Settings
from infra.store import engine_of, open_service
from projections.views_db import create_views_tables, open_views_engine

#: Seconds start-up waits for NATS before serving without it.
NATS_WAIT = 5.0


@dataclass
class Resources:
    settings: Settings
    service: CaseService
    views: Engine
    nc: Client
    js: JetStreamContext
    idempotency: IdempotencyStore
    metrics: Metrics = field(default_factory=Metrics)
    #: The first connection attempt, still running while NATS has not answered yet.
    connecting: asyncio.Task[Client] | None = None

    @property
    def reference(self) -> ReferenceData:
        return self.service.reference

    @property
    def clock(self) -> Clock:
        return self.service.clock


async def open_resources(settings: Settings, clock: Clock | None = None) -> Resources:
    check_secret(settings)
    service = await asyncio.to_thread(open_service, settings, clock)
    try:
        await asyncio.to_thread(service.publish_duty_list)
        views = open_views_engine(settings)
        await asyncio.to_thread(create_views_tables, views)
        idempotency = await asyncio.to_thread(
            IdempotencyStore, engine_of(service), settings.database_schema or None
        )
    except BaseException:
        service.close()
        raise
    nc = Client()
    connecting = asyncio.create_task(connect_service(settings, "whistleloop-gateway", client=nc))
    # Normally connected at once; if NATS is down the gateway still starts (and /readyz says why)
    # while the client keeps trying in the background.
    await asyncio.wait([connecting], timeout=NATS_WAIT)
    service.after_save.append(Nudger(nc, asyncio.get_running_loop()))
    resources = Resources(settings, service, views, nc, nc.jetstream(), idempotency)
    resources.connecting = connecting
    return resources


async def close_resources(resources: Resources) -> None:
    if resources.connecting is not None and not resources.connecting.done():
        resources.connecting.cancel()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(resources.nc.drain(), 5)
    with contextlib.suppress(Exception):
        await resources.nc.close()
    resources.views.dispose()
    resources.service.close()
