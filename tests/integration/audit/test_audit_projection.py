"""audit, through the real runner on real NATS, on SQLite and PostgreSQL views.

Every event becomes a leaf in notification order with its canonical body and per-aggregate chain
entry (recomputed here with hashlib); `audit_nodes` holds exactly the complete perfect subtrees; the
state's frontier gives the root of all leaves; heads are signed at the configured cadence, stored and
published on WL_AUDIT. Incremental runs extend the same tree, and a reset and rebuild gives the same
log, nodes and state.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from pathlib import Path

import pytest
from nats.aio.client import Client
from sqlalchemy import Engine, select

from domain.actors import Actor
from domain.service import CaseService
from infra.event_codec import EventEnvelope
from infra.nats.streams import AUDIT_STREAM, AUDIT_SUBJECTS
from infra.settings import Settings
from infra.signing import load_or_create_signer, verify_tree_head
from projections import merkle
from projections.audit import (
    Audit,
    AuditState,
    audit_heads,
    audit_log,
    audit_nodes,
    publish_tree_head,
)
from projections.base import ApplyContext, read_messages
from projections.control import reset_projection
from projections.views_db import create_views_tables, open_views_engine
from tests.integration.audit.support import Audited, build, catch_up, drive_cases
from tests.integration.projections.support import RelayLike, table_rows

pytestmark = pytest.mark.asyncio

HEAD_EVERY = 10


def leaf(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def assert_log_matches(engine: Engine, envelopes: list[EventEnvelope]) -> None:
    log = sorted(table_rows(engine, audit_log), key=lambda r: int(r["leaf_index"]))
    assert len(log) == len(envelopes)
    chains: dict[str, bytes] = {}
    for index, (row, envelope) in enumerate(zip(log, envelopes, strict=True)):
        body = envelope.body()
        chain = hashlib.sha256(chains.get(envelope.aggregate_id, bytes(32)) + body).digest()
        chains[envelope.aggregate_id] = chain
        assert row == {
            "leaf_index": index,
            "notification_id": envelope.notification_id,
            "aggregate_id": envelope.aggregate_id,
            "version": envelope.version,
            "event_type": envelope.event_type,
            "topic": envelope.topic,
            "actor_role": envelope.actor.get("role", ""),
            "actor_id": envelope.actor.get("id", ""),
            "timestamp": envelope.timestamp,
            "street": envelope.street,
            "body": body.decode(),
            "leaf_hash": leaf(body).hex(),
            "chain_hash": chain.hex(),
        }
    assert {e.topic.split(".")[1] for e in envelopes} == {"case", "duty_list"}


def assert_tree_matches(engine: Engine, envelopes: list[EventEnvelope]) -> None:
    leaves = [leaf(e.body()) for e in envelopes]
    nodes = {(int(r["level"]), int(r["idx"])): r["hash"] for r in table_rows(engine, audit_nodes)}
    n = len(leaves)
    expected = {
        (level, idx): merkle.root(leaves[idx << level : (idx + 1) << level]).hex()
        for level in range(n.bit_length())
        for idx in range(n >> level)
    }
    assert nodes == expected
    with engine.connect() as conn:
        state = AuditState.load(conn)
    assert state.frontier.size == n
    assert state.frontier.root() == merkle.root(leaves)
    assert state.last_notification_id == envelopes[-1].notification_id


async def assert_heads_match(audited: Audited, head_every: int) -> list[int]:
    """Every stored head is signed, has the root of its prefix, and is on WL_AUDIT; returns sizes."""
    leaves = [leaf(e.body()) for e in audited.envelopes]
    public = audited.signer.public_key_raw
    heads = audited.heads()
    assert heads
    for head in heads:
        size = head["tree_size"]
        assert isinstance(size, int)
        assert verify_tree_head(head, public)
        assert head["root_hash"] == merkle.root(leaves[:size]).hex()
    with audited.views.connect() as conn:
        assert all(conn.execute(select(audit_heads.c.published)).scalars())
    messages = await read_messages(audited.js, AUDIT_STREAM, AUDIT_SUBJECTS)
    published = [json.loads(m.data) for m in messages]
    assert sorted(published, key=lambda h: h["tree_size"]) == heads
    assert all(
        m.headers["Nats-Msg-Id"] == f"audit-head:{h['tree_size']}"
        for m, h in zip(messages, published, strict=True)
    )
    return [int(h["tree_size"]) for h in heads]


async def test_log_tree_and_heads_incremental_and_rebuilt(
    event_store: CaseService,
    views_engine: Engine,
    nc: Client,
    actors: dict[str, Actor],
    tmp_path: Path,
) -> None:
    signer = load_or_create_signer(tmp_path / "audit.pem")
    audited = await build(event_store, views_engine, nc, signer, actors, head_every=HEAD_EVERY)
    assert_log_matches(views_engine, audited.envelopes)
    assert_tree_matches(views_engine, audited.envelopes)
    sizes = await assert_heads_match(audited, HEAD_EVERY)
    # The runner's heads (all but the on-demand last one) come at batch ends, HEAD_EVERY apart.
    assert all(b - a >= HEAD_EVERY for a, b in itertools.pairwise(sizes[:-1]))
    assert sizes[-1] == len(audited.envelopes)

    drive_cases(event_store, actors)  # incremental: the same tree grows
    await catch_up(audited, Audit(signer, head_every=HEAD_EVERY))
    assert_log_matches(views_engine, audited.envelopes)
    assert_tree_matches(views_engine, audited.envelopes)
    assert len(await assert_heads_match(audited, HEAD_EVERY)) > len(sizes)

    before = [table_rows(views_engine, t) for t in (audit_log, audit_nodes)]
    reset_projection(views_engine, Audit())
    await catch_up(audited, Audit(signer, head_every=HEAD_EVERY))
    assert [table_rows(views_engine, t) for t in (audit_log, audit_nodes)] == before
    assert_tree_matches(views_engine, audited.envelopes)


async def test_heads_follow_wall_time_when_few_leaves_come(
    event_store: CaseService, nc: Client, actors: dict[str, Actor], tmp_path: Path
) -> None:
    signer = load_or_create_signer(tmp_path / "audit.pem")
    engine = open_views_engine(Settings(var_dir=tmp_path / "views"))
    create_views_tables(engine)
    now = [1_800_000_000.0]
    audited = Audited(event_store, engine, nc, signer, RelayLike(event_store), [])

    def projection() -> Audit:
        return Audit(signer, head_every=10**6, head_interval=60.0, wall_clock=lambda: now[0])

    drive_cases(event_store, actors)
    await catch_up(audited, projection())
    first = [h["tree_size"] for h in audited.heads()]
    assert len(first) == 1  # the first batch signs (no head yet); later ones are under both limits
    drive_cases(event_store, actors)
    now[0] += 59.0
    await catch_up(audited, projection())
    assert [h["tree_size"] for h in audited.heads()] == first
    drive_cases(event_store, actors)
    now[0] += 2.0
    await catch_up(audited, projection())
    heads = audited.heads()
    assert len(heads) == 2
    assert heads[1]["timestamp"] == "2027-01-15T08:01:01.000000Z"
    engine.dispose()


async def test_on_demand_head_is_stored_once_and_published_once(
    event_store: CaseService, nc: Client, actors: dict[str, Actor], tmp_path: Path
) -> None:
    signer = load_or_create_signer(tmp_path / "audit.pem")
    engine = open_views_engine(Settings(var_dir=tmp_path / "views"))
    create_views_tables(engine)
    js = nc.jetstream()
    empty = await publish_tree_head(engine, signer, js)  # an empty log has a head too
    assert (empty["tree_size"], empty["root_hash"]) == (0, merkle.EMPTY_ROOT.hex())
    audited = await build(event_store, engine, nc, signer, actors, head_every=10**6)
    again = await publish_tree_head(engine, signer, js)
    assert again == audited.heads()[-1]
    assert again["tree_size"] == len(audited.envelopes)
    messages = await read_messages(js, AUDIT_STREAM, AUDIT_SUBJECTS)
    sizes = [json.loads(m.data)["tree_size"] for m in messages]
    assert sizes.count(len(audited.envelopes)) == 1  # the repeat was de-duplicated
    await assert_heads_match(audited, 10**6)
    engine.dispose()


async def test_batches_write_what_single_events_write(
    event_store: CaseService, nc: Client, actors: dict[str, Actor], tmp_path: Path
) -> None:
    """The batch hooks called as the runner calls them vs. a runner without hooks (a batch each)."""
    drive_cases(event_store, actors)
    envelopes = RelayLike(event_store).new_envelopes()
    context = ApplyContext(asyncio.get_running_loop(), nc.jetstream(), 5.0)
    engines = []
    for name, size in (("batched", 7), ("single", 0)):
        engine = open_views_engine(Settings(var_dir=tmp_path / name))
        create_views_tables(engine)
        projection = Audit()
        with engine.begin() as conn:
            for start in range(0, len(envelopes), size or 1):
                if size:
                    projection.begin_batch(conn)
                for envelope in envelopes[start : start + (size or 1)]:
                    assert projection.apply(conn, envelope, context)
                if size:
                    projection.end_batch(conn)
            if size:  # a replayed batch is recognised: nothing is audited twice
                projection.begin_batch(conn)
                assert projection.apply(conn, envelopes[3], context)
                projection.end_batch(conn)
        engines.append(engine)
    for table in (audit_log, audit_nodes):
        assert table_rows(engines[0], table) == table_rows(engines[1], table)
    assert_log_matches(engines[0], envelopes)
    assert_tree_matches(engines[0], envelopes)
    for engine in engines:
        engine.dispose()
