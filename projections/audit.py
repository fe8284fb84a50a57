"""`audit`: every event as a leaf of an RFC 6962 Merkle tree and a link of its case's hash chain.

ALL events (case and duty list) are leaves, in notification order: `audit_log.leaf_index` is how many
came before. Each row keeps the canonical body the relay published, its leaf hash and the chain entry
of its aggregate (`sha256(previous entry || body)`, 32 zero bytes before the first). `audit_nodes`
holds every complete perfect subtree, so inclusion and consistency proofs cost O(log n) lookups, and
`audit_state` the tree's frontier, so the root costs O(log n) too.

Signed tree heads (Ed25519, `infra.signing`) are what make the log tamper-evident: once a head has
been published on WL_AUDIT, no rewrite of the event store or of these tables can reproduce its root.
The projection signs one at the end of a batch when `head_every` leaves or `head_interval` seconds
(wall time) have passed since the last and the tree grew; `publish_tree_head` signs one on demand.

Rows are buffered per batch (`begin_batch`/`end_batch`, called by the runner) and written with
`executemany`; chain predecessors are read once per batch. A runner without the hooks still works:
`apply` then wraps each event in a batch of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    and_,
    func,
    insert,
    select,
    update,
)

from infra.event_codec import HEADER_MSG_ID, EventEnvelope, canonical_json, iso_utc
from infra.signing import TreeHeadSigner
from projections import merkle
from projections.base import ApplyContext
from projections.views_db import TIME, metadata

log = logging.getLogger(__name__)

NAME = "audit"
#: Signed tree heads go to WL_AUDIT (subjects wl.audit.>), one message per tree size.
HEAD_SUBJECT = "wl.audit.sth"
ZERO_CHAIN = bytes(32)
_STATE_ID = 1
_CHUNK = 500  # ids per IN (…) list

audit_log = Table(
    "audit_log",
    metadata,
    Column("leaf_index", BigInteger, primary_key=True, autoincrement=False),
    Column("notification_id", BigInteger, nullable=False, unique=True),
    Column("aggregate_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("topic", String(128), nullable=False),
    Column("actor_role", String(32), nullable=False),
    Column("actor_id", String(64), nullable=False),
    Column("timestamp", TIME, nullable=False),
    Column("street", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("leaf_hash", String(64), nullable=False),
    Column("chain_hash", String(64), nullable=False),
    Index("ix_audit_log_aggregate_version", "aggregate_id", "version"),
)

#: Every complete perfect subtree: level 0 are the leaves, (level, idx) covers idx·2^level onwards.
audit_nodes = Table(
    "audit_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
)

#: One row: the tree's size and frontier (JSON list of hex roots, largest subtree first), the last
#: audited notification and the last signed head.
audit_state = Table(
    "audit_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("tree_size", BigInteger, nullable=False),
    Column("frontier", Text, nullable=False),
    Column("last_notification_id", BigInteger, nullable=False),
    Column("last_head_size", BigInteger, nullable=False),
    Column("last_head_at", TIME),
)

audit_heads = Table(
    "audit_heads",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", String(64), nullable=False),
    Column("timestamp", TIME, nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", Text, nullable=False),
    Column("published", Boolean, nullable=False),
)


@dataclass
class AuditState:
    """`audit_state` in memory for one batch (or one on-demand head)."""

    exists: bool = False
    frontier: merkle.Frontier = field(default_factory=merkle.Frontier)
    last_notification_id: int = 0
    last_head_size: int = 0
    last_head_at: str | None = None

    @classmethod
    def load(cls, conn: Connection, lock: bool = False) -> AuditState:
        query = select(audit_state).where(audit_state.c.id == _STATE_ID)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            return cls()
        return cls(
            exists=True,
            frontier=merkle.Frontier.from_json(int(row.tree_size), row.frontier),
            last_notification_id=int(row.last_notification_id),
            last_head_size=int(row.last_head_size),
            last_head_at=row.last_head_at,
        )

    def save(self, conn: Connection) -> None:
        values = {
            "tree_size": self.frontier.size,
            "frontier": self.frontier.to_json(),
            "last_notification_id": self.last_notification_id,
            "last_head_size": self.last_head_size,
            "last_head_at": self.last_head_at,
        }
        if self.exists:
            conn.execute(update(audit_state).where(audit_state.c.id == _STATE_ID).values(values))
        else:
            conn.execute(insert(audit_state).values(id=_STATE_ID, **values))
            self.exists = True


@dataclass
class _Batch:
    state: AuditState
    envelopes: list[EventEnvelope] = field(default_factory=list)
    context: ApplyContext | None = None


class Audit:
    """The audit projection (see the module docstring). Without a signer it signs no heads."""

    name = NAME
    tables = (audit_log, audit_nodes, audit_state, audit_heads)
    subjects = ("wl.ev.>",)

    def __init__(
        self,
        signer: TreeHeadSigner | None = None,
        head_every: int = 1000,
        head_interval: float = 60.0,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.head_every = head_every
        self.head_interval = head_interval
        self.wall_clock = wall_clock
        self._batch: _Batch | None = None

    def begin_batch(self, conn: Connection) -> None:
        """Reads the state once per batch (locked: an on-demand head waits for the batch)."""
        self._batch = _Batch(AuditState.load(conn, lock=True))

    def apply(self, conn: Connection, envelope: EventEnvelope, context: ApplyContext) -> bool:
        if self._batch is None:  # a runner without batch hooks: a batch of one
            self.begin_batch(conn)
            try:
                self._add(envelope, context)
                self.end_batch(conn)
            finally:
                self._batch = None
            return True
        self._add(envelope, context)
        return True

    def _add(self, envelope: EventEnvelope, context: ApplyContext) -> None:
        assert self._batch is not None
        self._batch.context = context
        state = self._batch.state
        if envelope.notification_id > state.last_notification_id:  # else audited already
            self._batch.envelopes.append(envelope)
            state.last_notification_id = envelope.notification_id

    def end_batch(self, conn: Connection) -> None:
        batch, self._batch = self._batch, None
        if batch is None or not batch.envelopes:
            return
        state = batch.state
        chains = _latest_chains(conn, {e.aggregate_id for e in batch.envelopes})
        rows, nodes = [], []
        for envelope in batch.envelopes:
            rows.append(_log_row(envelope, state.frontier, chains))
            nodes.extend(state.frontier.append(bytes.fromhex(rows[-1]["leaf_hash"])))
        conn.execute(insert(audit_log), rows)
        conn.execute(
            insert(audit_nodes),
            [{"level": lv, "idx": i, "hash": h.hex()} for lv, i, h in nodes],
        )
        if self._head_due(state):
            self._sign_in_batch(conn, state, batch.context)
        state.save(conn)

    def _head_due(self, state: AuditState) -> bool:
        size = state.frontier.size
        if self.signer is None or size <= state.last_head_size:
            return False
        if size - state.last_head_size >= self.head_every or state.last_head_at is None:
            return True
        since = self.wall_clock() - datetime.fromisoformat(state.last_head_at).timestamp()
        return since >= self.head_interval

    def _sign_in_batch(
        self, conn: Connection, state: AuditState, context: ApplyContext | None
    ) -> None:
        """Signs the head; it is published (ack awaited) before the batch commits, or not at all."""
        assert self.signer is not None
        assert context is not None
        signed = _sign(self.signer, state, self.wall_clock())
        conn.execute(insert(audit_heads).values(_head_row(signed, published=True)))
        context.publish(HEAD_SUBJECT, canonical_json(signed), head_headers(signed["tree_size"]))
        context.end_event()  # publications queued after the last event are flushed with the batch


def _log_row(
    envelope: EventEnvelope, frontier: merkle.Frontier, chains: dict[str, bytes]
) -> dict[str, Any]:
    body = envelope.body()
    chain = merkle.chain_hash(chains.get(envelope.aggregate_id, ZERO_CHAIN), body)
    chains[envelope.aggregate_id] = chain
    return {
        "leaf_index": frontier.size,
        "notification_id": envelope.notification_id,
        "aggregate_id": envelope.aggregate_id,
        "version": envelope.version,
        "event_type": envelope.event_type,
        "topic": envelope.topic,
        "actor_role": envelope.actor.get("role", ""),
        "actor_id": envelope.actor.get("id", ""),
        "timestamp": envelope.timestamp,
        "street": envelope.street,
        "body": body.decode("utf-8"),
        "leaf_hash": merkle.leaf_hash(body).hex(),
        "chain_hash": chain.hex(),
    }


def _latest_chains(conn: Connection, aggregate_ids: Iterable[str]) -> dict[str, bytes]:
    """Each aggregate's last chain entry so far (one query per _CHUNK aggregates)."""
    ids, found = sorted(aggregate_ids), {}
    c = audit_log.c
    for start in range(0, len(ids), _CHUNK):
        last = (
            select(c.aggregate_id, func.max(c.leaf_index).label("leaf"))
            .where(c.aggregate_id.in_(ids[start : start + _CHUNK]))
            .group_by(c.aggregate_id)
            .subquery()
        )
        query = select(c.aggregate_id, c.chain_hash).join(
            last, and_(c.aggregate_id == last.c.aggregate_id, c.leaf_index == last.c.leaf)
        )
        found.update({row[0]: bytes.fromhex(row[1]) for row in conn.execute(query)})
    return found


def _sign(signer: TreeHeadSigner, state: AuditState, now: float) -> dict[str, Any]:
    timestamp = iso_utc(datetime.fromtimestamp(now, UTC))
    signed = signer.sign(state.frontier.size, state.frontier.root(), timestamp)
    state.last_head_size, state.last_head_at = state.frontier.size, timestamp
    return signed


def _head_row(signed: dict[str, Any], published: bool) -> dict[str, Any]:
    keys = ("tree_size", "root_hash", "timestamp", "key_id", "signature")
    return {**{k: signed[k] for k in keys}, "published": published}


def head_headers(tree_size: int) -> dict[str, str]:
    """De-duplication: a head re-sent (a retried batch, a repeated `audit sign`) is stored once."""
    return {HEADER_MSG_ID: f"audit-head:{tree_size}"}


def signed_head(row: Any) -> dict[str, Any]:
    """An `audit_heads` row as the signed head it stores (what `verify_tree_head` checks)."""
    keys = ("tree_size", "root_hash", "timestamp", "key_id", "signature")
    return {k: (int(row[k]) if k == "tree_size" else row[k]) for k in keys}


# --- on demand: a head now, and proofs from the node store --------------------------------------


async def publish_tree_head(
    engine: Engine, signer: TreeHeadSigner, js: JetStreamContext
) -> dict[str, Any]:
    """Signs the current tree head (read under the state row's lock, so consistent with the
    projector's batches), stores it in `audit_heads`, publishes it on WL_AUDIT and returns it.

    Async: call it from the event loop (the SQL runs in a worker thread). When the current size has
    a head already, that head is published again (de-duplicated by its message id) and returned.
    """
    signed = await asyncio.to_thread(_store_current_head, engine, signer)
    await js.publish(
        HEAD_SUBJECT, canonical_json(signed), headers=head_headers(signed["tree_size"])
    )
    await asyncio.to_thread(_mark_published, engine, int(signed["tree_size"]))
    return signed


async def sign_while_idle(
    engine: Engine, signer: TreeHeadSigner, js: JetStreamContext, every: float, stop: asyncio.Event
) -> None:
    """Signs a head every `every` seconds when the log has grown since the last one.

    The projection signs only at the end of a batch, so the newest events of a quiet period would
    otherwise wait for the next event to be covered by a signed head. Runs beside the projector.
    """
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
        if stop.is_set():
            return
        try:
            if await asyncio.to_thread(_grown_since_last_head, engine):
                await publish_tree_head(engine, signer, js)
        except Exception:  # NATS or the database away: try again next time
            log.warning("could not sign the audit tree head; retrying later", exc_info=True)


def _grown_since_last_head(engine: Engine) -> bool:
    with engine.connect() as conn:
        state = AuditState.load(conn)
    return state.exists and state.frontier.size > state.last_head_size


def _store_current_head(engine: Engine, signer: TreeHeadSigner) -> dict[str, Any]:
    with engine.begin() as conn:
        _lock_state(conn)
        state = AuditState.load(conn, lock=True)
        size = state.frontier.size
        existing = conn.execute(select(audit_heads).where(audit_heads.c.tree_size == size)).first()
        if existing is not None:
            return signed_head(existing._mapping)
        signed = _sign(signer, state, time.time())
        conn.execute(insert(audit_heads).values(_head_row(signed, published=False)))
        if state.exists:  # an empty log has no state row yet: the projector will write it
            state.save(conn)
        return signed


def _lock_state(conn: Connection) -> None:
    """Takes the write lock first (SQLite would otherwise fail to upgrade a read transaction)."""
    conn.execute(
        update(audit_state)
        .where(audit_state.c.id == _STATE_ID)
        .values(tree_size=audit_state.c.tree_size)
    )


def _mark_published(engine: Engine, tree_size: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(audit_heads).where(audit_heads.c.tree_size == tree_size).values(published=True)
        )


def node_subtree(conn: Connection) -> merkle.Subtree:
    """A `merkle.Subtree` reading `audit_nodes` (nodes never change once complete)."""

    def lookup(start: int, size: int) -> bytes:
        level, idx = merkle.node_key(start, size)
        found = conn.execute(
            select(audit_nodes.c.hash).where(audit_nodes.c.level == level, audit_nodes.c.idx == idx)
        ).scalar_one_or_none()
        if found is None:
            raise LookupError(f"no audit node ({level}, {idx}): the tree is not that big yet")
        return bytes.fromhex(found)

    return lookup


def inclusion_proof(conn: Connection, leaf_index: int, tree_size: int) -> list[bytes]:
    """The audit path of one leaf in the tree of `tree_size` leaves (e.g. a signed head's)."""
    return merkle.inclusion_proof_from(leaf_index, tree_size, node_subtree(conn))


def consistency_proof(conn: Connection, old_size: int, new_size: int) -> list[bytes]:
    """Proves the tree of `old_size` leaves is a prefix of the tree of `new_size` leaves."""
    return merkle.consistency_proof_from(old_size, new_size, node_subtree(conn))


def tree_size(conn: Connection) -> int:
    found = conn.execute(
        select(audit_state.c.tree_size).where(audit_state.c.id == _STATE_ID)
    ).scalar_one_or_none()
    return int(found or 0)
