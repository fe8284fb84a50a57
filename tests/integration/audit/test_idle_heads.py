"""A quiet log still gets its newest events under a signed head: the idle signer beside the projector.

The projection signs at the end of a batch only; when events stop coming, `sign_while_idle` (run by
`whistleloop project` next to the runner) signs the grown tree within its interval, and only then.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from nats.aio.client import Client

from domain.actors import Actor
from domain.service import CaseService
from infra.nats.streams import AUDIT_STREAM, AUDIT_SUBJECTS
from infra.settings import Settings
from infra.signing import load_or_create_signer, verify_tree_head
from projections.audit import Audit, sign_while_idle
from projections.base import read_messages
from projections.views_db import create_views_tables, open_views_engine
from tests.integration.audit.support import Audited, catch_up, drive_cases
from tests.integration.projections.support import RelayLike, eventually

pytestmark = pytest.mark.asyncio


async def test_the_idle_signer_covers_the_newest_events(
    event_store: CaseService, nc: Client, actors: dict[str, Actor], tmp_path: Path
) -> None:
    signer = load_or_create_signer(tmp_path / "audit.pem")
    engine = open_views_engine(Settings(var_dir=tmp_path / "views"))
    create_views_tables(engine)
    audited = Audited(event_store, engine, nc, signer, RelayLike(event_store), [])
    drive_cases(event_store, actors)
    await catch_up(audited, Audit(signer, head_every=10**6, head_interval=3600.0))
    drive_cases(event_store, actors)
    await catch_up(audited, Audit(signer, head_every=10**6, head_interval=3600.0))
    size = len(audited.envelopes)
    assert [h["tree_size"] for h in audited.heads()][-1] < size  # the projection left it unsigned

    stop = asyncio.Event()
    task = asyncio.create_task(sign_while_idle(engine, signer, nc.jetstream(), 0.2, stop))
    try:
        await eventually(lambda: audited.heads()[-1]["tree_size"] == size, "an idle head")
        await asyncio.sleep(0.6)  # nothing new: no further head
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    heads = audited.heads()
    assert [h["tree_size"] for h in heads].count(size) == 1
    assert verify_tree_head(heads[-1], signer.public_key_raw)
    on_stream = await read_messages(nc.jetstream(), AUDIT_STREAM, AUDIT_SUBJECTS)
    assert [json.loads(m.data)["tree_size"] for m in on_stream].count(size) == 1
    engine.dispose()
