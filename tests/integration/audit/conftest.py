"""The `audited` fixture the tamper tests share: an audited history on each event store, its read
models (the audit tables) in a database of the same kind, ready to be tampered with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from nats.aio.client import Client

from domain.actors import Actor
from domain.clock import ManualClock
from infra.settings import Settings
from infra.signing import load_or_create_signer
from infra.store import open_service
from projections.views_db import create_views_tables, open_views_engine
from tests.conftest import START
from tests.integration.audit.support import Audited, build
from tests.stores import PG_URL


def views_settings_beside(store: Settings, tmp_path: Path) -> Settings:
    """The views in a SQLite file beside a SQLite store; in the store's own schema on PostgreSQL
    (dropped with it), so the views' SQL tampering runs on both kinds of database too."""
    if store.is_sqlite:
        return Settings(var_dir=tmp_path / "views")
    url = f"{PG_URL}?options=-csearch_path%3D{store.database_schema}"
    return Settings(views_database_url=url, var_dir=tmp_path / "views")


@pytest_asyncio.fixture
async def audited(
    store_settings: Settings, nc: Client, actors: dict[str, Actor], tmp_path: Path
) -> AsyncIterator[Audited]:
    service = open_service(store_settings, ManualClock(START))
    service.publish_duty_list()
    views = open_views_engine(views_settings_beside(store_settings, tmp_path))
    create_views_tables(views)
    signer = load_or_create_signer(tmp_path / "audit.pem")
    try:
        yield await build(service, views, nc, signer, actors, head_every=10)
    finally:
        service.close()
        views.dispose()
