"""`whistleloop audit verify`: recompute the audit from the EVENT STORE and name every difference.

Three witnesses of each notification are compared: the store's row (re-encoded as the relay encodes
it: canonical body, a case event's street from its CaseReported), the WL_EVENTS message carrying that
`Wl-Notification-Id`, and the `audit_log` row (body, leaf hash, chain entry). The hash chains are
recomputed from the store; the Merkle root at every signed head's size (WL_AUDIT messages and
`audit_heads` rows) is recomputed from the store's leaves, and every signature is checked. A rewrite
of the store in SQL shows up as a payload change, a missing event or a changed order against the
stream, and as broken chains and head roots against what was signed before it. A second WL_EVENTS
message for one notification is named, so is a published head WL_AUDIT no longer holds, and every
`audit_nodes` row (what proofs are read from) is recomputed from the audit log's leaf hashes.

Notifications after the last one a log must hold are only "pending" (the relay or the projector has
not got there yet): counted, not failures. A log must hold at least what a later log took from it:
the audit folds only what WL_EVENTS delivered, and a signed head covers the audit rows it was
signed over (`_witnessed_through`). The three logs are held in memory.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from rich.console import Console
from rich.table import Table as RichTable
from sqlalchemy import Engine, select

from domain.service import CaseService
from infra.envelopes import CASE_TOPIC_PREFIX
from infra.event_codec import DISTRICT_TOKEN, HEADER_NOTIFICATION, EventEnvelope
from infra.nats.connection import connect_once
from infra.nats.streams import AUDIT_STREAM, AUDIT_SUBJECTS, EVENTS_STREAM, EVENTS_SUBJECTS
from infra.settings import Settings
from infra.signing import load_or_create_signer, verify_tree_head
from infra.store import notifications_after, open_service
from projections import merkle
from projections.audit import (
    ZERO_CHAIN,
    audit_heads,
    audit_log,
    audit_nodes,
    publish_tree_head,
    signed_head,
)
from projections.base import read_messages
from projections.views_db import create_views_tables, open_views_engine

PAYLOAD_CHANGED = "payload changed"
MISSING_FROM_STORE = "missing from store"
MISSING_FROM_STREAM = "missing from stream"
MISSING_FROM_AUDIT = "missing from audit log"
ORDER_DIFFERS = "order differs"
CHAIN_BROKEN = "chain broken"
AUDIT_ROW_ALTERED = "audit row altered"
UNDECODABLE = "undecodable in store"
HEAD_ROOT_MISMATCH = "head root mismatch"
BAD_SIGNATURE = "bad signature"
REPEATED_IN_STREAM = "repeated in stream"
FOREIGN_IN_STREAM = "not published by the relay"
HEAD_MISSING_FROM_STREAM = "head missing from WL_AUDIT"
NODE_ALTERED = "tree node altered"


@dataclass(frozen=True)
class Entry:
    """One witness of one notification."""

    notification_id: int
    aggregate_id: str
    version: int
    event_type: str
    body: bytes
    leaf_hash: str = ""
    chain_hash: str = ""
    leaf_index: int = -1  # audit_log rows only

    @property
    def identity(self) -> tuple[str, int]:
        return self.aggregate_id, self.version


@dataclass(frozen=True)
class EventIssue:
    notification_id: int
    case_id: str
    version: int
    event_type: str
    kind: str
    detail: str


@dataclass(frozen=True)
class HeadIssue:
    source: str  # "WL_AUDIT seq 7" or "audit_heads"
    tree_size: int
    kind: str
    detail: str


@dataclass(frozen=True)
class NodeIssue:
    """An `audit_nodes` row: the perfect subtree over leaves [index·2^level, (index+1)·2^level)."""

    level: int
    index: int
    kind: str
    detail: str


@dataclass
class VerifyReport:
    events: list[EventIssue] = field(default_factory=list)
    heads: list[HeadIssue] = field(default_factory=list)
    nodes: list[NodeIssue] = field(default_factory=list)
    store_events: int = 0
    stream_messages: int = 0
    audit_rows: int = 0
    heads_checked: int = 0
    pending: int = 0
    #: Sizes of signed heads on WL_AUDIT with no `audit_heads` row: not a failure (see
    #: `_unrecorded_heads`), printed so that an inspector knows.
    unrecorded_heads: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.events and not self.heads and not self.nodes


@dataclass
class _Sides:
    store: dict[int, Entry]
    stream: dict[int, Entry]
    audit: dict[int, Entry]
    heads: list[tuple[str, dict[str, Any]]]
    store_order: list[int]
    order_issues: list[EventIssue]
    stream_repeats: list[tuple[int, Entry]] = field(default_factory=list)  # (seq, later copy)
    stream_foreign: list[tuple[int, str]] = field(default_factory=list)  # (seq, subject)
    stream_head_sizes: set[int] = field(default_factory=set)
    row_heads: dict[int, bool] = field(default_factory=dict)  # audit_heads: size -> published
    nodes: dict[tuple[int, int], str] = field(default_factory=dict)  # audit_nodes


async def verify(
    store: CaseService | Settings,
    views_engine: Engine,
    js: JetStreamContext,
    public_key: bytes,
) -> VerifyReport:
    """Recomputes the audit from the event store and compares (see the module docstring)."""
    service = open_service(store) if isinstance(store, Settings) else store
    try:
        audit, audit_order, audit_streets = await asyncio.to_thread(_read_audit, views_engine)
        store_side = await asyncio.to_thread(_read_store, service, audit_streets)
    finally:
        if isinstance(store, Settings):
            service.close()
    wl_events = await _read_stream(js)
    stream_heads = await _read_heads(js)
    row_heads, published = await asyncio.to_thread(_audit_head_rows, views_engine)
    sides = _Sides(
        store=store_side,
        stream=wl_events.found,
        audit=audit,
        heads=stream_heads + row_heads,
        store_order=list(store_side),
        order_issues=_order_issues(wl_events.order, "WL_EVENTS")
        + _order_issues(audit_order, "audit"),
        stream_repeats=wl_events.repeats,
        stream_foreign=wl_events.foreign,
        stream_head_sizes={_size(head) for _, head in stream_heads},
        row_heads=published,
        nodes=await asyncio.to_thread(_read_nodes, views_engine),
    )
    return compare(sides, public_key)


# --- reading the witnesses ------------------------------------------------------------------------


def _read_store(service: CaseService, fallback_streets: dict[str, str]) -> dict[int, Entry]:
    """The store in notification order, each row encoded as the relay encodes it."""
    streets: dict[str, str] = {}
    found: dict[int, Entry] = {}
    last = 0
    while batch := notifications_after(service, last, 1000):
        for notification in batch:
            case_id = str(notification.originator_id)
            event_type = notification.topic.rsplit(".", 1)[-1]
            try:
                envelope = EventEnvelope.from_notification(notification, service.mapper, "")
                body = _with_street(envelope, streets, fallback_streets).body()
            except Exception as error:  # a tampered row may not decode at all
                body = f"undecodable: {type(error).__name__}: {error}".encode()
            found[notification.id] = Entry(
                notification.id, case_id, notification.originator_version, event_type, body
            )
        last = batch[-1].id
    return found


def _with_street(
    envelope: EventEnvelope, streets: dict[str, str], fallback: dict[str, str]
) -> EventEnvelope:
    """The relay's street: a case's comes from its CaseReported, the duty list's is the district."""
    if not envelope.topic.startswith(CASE_TOPIC_PREFIX):
        return replace(envelope, street=DISTRICT_TOKEN)
    if envelope.event_type == "CaseReported":
        streets[envelope.aggregate_id] = str(envelope.payload["street"])
    street = streets.get(envelope.aggregate_id) or fallback.get(envelope.aggregate_id, "")
    return replace(envelope, street=street)


def _entry_from_body(notification_id: int, body: bytes) -> Entry:
    try:
        decoded = json.loads(body)
        topic = str(decoded["topic"])
        return Entry(
            notification_id,
            str(decoded["aggregate_id"]),
            int(decoded["version"]),
            topic.rsplit(".", 1)[-1],
            body,
        )
    except (ValueError, KeyError, TypeError):
        return Entry(notification_id, "?", 0, "?", body)


@dataclass
class _StreamRead:
    """WL_EVENTS as read: the first message of each notification, their order, every later copy
    (with its seq), and every message with no notification id (seq, subject)."""

    found: dict[int, Entry] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    repeats: list[tuple[int, Entry]] = field(default_factory=list)
    foreign: list[tuple[int, str]] = field(default_factory=list)


async def _read_stream(js: JetStreamContext) -> _StreamRead:
    """The relay publishes each notification once (`Nats-Expected-Last-Msg-Id`), always with its
    id: a later copy is forged, kept apart (named `REPEATED_IN_STREAM`) rather than folded into the
    order check, and a message without an id was not published by the relay at all."""
    read = _StreamRead()
    for message in await read_messages(js, EVENTS_STREAM, EVENTS_SUBJECTS):
        raw = message.headers.get(HEADER_NOTIFICATION, "")
        if not raw.isdigit():
            read.foreign.append((message.seq, message.subject))
            continue
        nid = int(raw)
        entry = _entry_from_body(nid, message.data)
        if nid in read.found:
            read.repeats.append((message.seq, entry))
            continue
        read.order.append(nid)
        read.found[nid] = entry
    return read


def _read_audit(engine: Engine) -> tuple[dict[int, Entry], list[int], dict[str, str]]:
    c = audit_log.c
    query = select(
        c.leaf_index,
        c.notification_id,
        c.aggregate_id,
        c.version,
        c.event_type,
        c.body,
        c.leaf_hash,
        c.chain_hash,
        c.street,
    ).order_by(c.leaf_index)
    found: dict[int, Entry] = {}
    order: list[int] = []
    streets: dict[str, str] = {}
    with engine.connect() as conn:
        for row in conn.execute(query):
            nid = int(row.notification_id)
            order.append(nid)
            found[nid] = Entry(
                nid,
                row.aggregate_id,
                int(row.version),
                row.event_type,
                row.body.encode("utf-8"),
                row.leaf_hash,
                row.chain_hash,
                int(row.leaf_index),
            )
            streets.setdefault(row.aggregate_id, row.street)
    return found, order, streets


async def _read_heads(js: JetStreamContext) -> list[tuple[str, dict[str, Any]]]:
    heads = []
    for message in await read_messages(js, AUDIT_STREAM, AUDIT_SUBJECTS):
        try:
            heads.append((f"WL_AUDIT seq {message.seq}", dict(json.loads(message.data))))
        except (ValueError, TypeError):
            heads.append((f"WL_AUDIT seq {message.seq}", {}))
    return heads


def _audit_head_rows(engine: Engine) -> tuple[list[tuple[str, dict[str, Any]]], dict[int, bool]]:
    """The stored heads, and each one's `published` flag by tree size."""
    with engine.connect() as conn:
        rows = conn.execute(select(audit_heads).order_by(audit_heads.c.tree_size)).all()
    heads = [("audit_heads", signed_head(row._mapping)) for row in rows]
    return heads, {int(row.tree_size): bool(row.published) for row in rows}


def _read_nodes(engine: Engine) -> dict[tuple[int, int], str]:
    c = audit_nodes.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.level, c.idx, c.hash)).all()
    return {(int(row.level), int(row.idx)): row.hash for row in rows}


def _order_issues(order: list[int], where: str) -> list[EventIssue]:
    """A log's own order: notification ids must only grow."""
    issues = []
    for before, after in itertools.pairwise(order):
        if after <= before:
            detail = f"{where} has #{after} after #{before}"
            issues.append(EventIssue(after, "?", 0, "?", ORDER_DIFFERS, detail))
    return issues


# --- comparing ------------------------------------------------------------------------------------


def compare(sides: _Sides, public_key: bytes) -> VerifyReport:
    report = VerifyReport(
        store_events=len(sides.store),
        stream_messages=len(sides.stream),
        audit_rows=len(sides.audit),
    )
    report.events.extend(sides.order_issues)
    by_identity = {e.identity: nid for nid, e in sides.stream.items()}
    ids = sorted(set(sides.store) | set(sides.stream) | set(sides.audit))
    stream_last, audit_last = _witnessed_through(sides, public_key)
    for nid in ids:
        for issue in _event_issues(nid, sides, by_identity, stream_last, audit_last, report):
            report.events.append(issue)
    report.events.extend(_repeat_issues(sides))
    report.events.extend(_foreign_issues(sides))
    report.events.extend(_chain_issues(sides))
    report.heads.extend(_head_issues(sides, public_key))
    report.heads.extend(_unpublished_issues(sides))
    report.nodes.extend(_node_issues(sides))
    report.heads_checked = len(sides.heads)
    report.unrecorded_heads = _unrecorded_heads(sides)
    report.events.sort(key=lambda issue: (issue.notification_id, issue.kind))
    report.nodes.sort(key=lambda issue: (issue.level, issue.index))
    return report


def _witnessed_through(sides: _Sides, public_key: bytes) -> tuple[int, int]:
    """The last notification WL_EVENTS and `audit_log` must hold, whatever they hold now.

    A log's own last id alone would make a purged or re-created stream, or a log whose tail was
    deleted, pass as one not caught up yet ("pending"). But the audit folds only what WL_EVENTS
    delivered, so the stream must hold all the audit holds; and a head signed with the key at size
    n was signed over n audit rows, so the audit must hold the store's first n events.
    """
    signed = [_size(h) for _, h in sides.heads if verify_tree_head(h, public_key)]
    covered = min(max(signed, default=0), len(sides.store_order))
    audited = max(sides.audit, default=0)
    if covered > 0:
        audited = max(audited, sides.store_order[covered - 1])
    return max(max(sides.stream, default=0), audited), audited


def _event_issues(
    nid: int,
    sides: _Sides,
    by_identity: dict[tuple[str, int], int],
    stream_last: int,
    audit_last: int,
    report: VerifyReport,
) -> Iterator[EventIssue]:
    s, t, a = sides.store.get(nid), sides.stream.get(nid), sides.audit.get(nid)
    if s is None:
        witness = t or a
        assert witness is not None
        yield _issue(witness, MISSING_FROM_STORE, "the stream or the audit log has it")
        if a is not None:
            yield from _audit_row_issues(a, t)
        return
    if s.body.startswith(b"undecodable: "):
        yield _issue(s, UNDECODABLE, s.body.decode())
    if t is None:
        if nid <= stream_last:
            yield _issue(s, MISSING_FROM_STREAM, "no WL_EVENTS message carries this id")
        else:
            report.pending += 1
    elif s.body != t.body and not s.body.startswith(b"undecodable: "):
        yield _difference(s, t, by_identity)
    if a is None:
        if nid <= audit_last:
            yield _issue(s, MISSING_FROM_AUDIT, "no audit_log row for this id")
        elif t is not None:
            report.pending += 1
    else:
        yield from _audit_row_issues(a, t, s)


def _difference(s: Entry, t: Entry, by_identity: dict[tuple[str, int], int]) -> EventIssue:
    """Same id, different body: another event moved here, or this one was edited."""
    moved_from = by_identity.get(s.identity)
    if s.identity != t.identity and moved_from is not None:
        detail = (
            f"the store has here {s.event_type} v{s.version} of {s.aggregate_id}, "
            f"which the stream has at #{moved_from}"
        )
        return _issue(t, ORDER_DIFFERS, detail)
    return _issue(t, PAYLOAD_CHANGED, "store ≠ stream: " + body_diff(t.body, s.body))


def _repeat_issues(sides: _Sides) -> Iterator[EventIssue]:
    """Every later WL_EVENTS copy of a notification: readers keep the first and skip the rest, so a
    copy with another body would otherwise pass unseen whatever it says."""
    for seq, copy in sides.stream_repeats:
        nid = copy.notification_id
        reference = sides.store.get(nid) or sides.stream[nid]
        same = copy.body == reference.body
        what = "the same body" if same else "store ≠ copy: " + body_diff(reference.body, copy.body)
        yield _issue(copy, REPEATED_IN_STREAM, f"WL_EVENTS seq {seq} carries #{nid} again, {what}")


def _foreign_issues(sides: _Sides) -> Iterator[EventIssue]:
    """WL_EVENTS messages without a notification id: readers halt on them (the projectors) or pass
    them by, so each is named with where it sits."""
    for seq, subject in sides.stream_foreign:
        detail = f"WL_EVENTS seq {seq} ({subject}) carries no {HEADER_NOTIFICATION} header"
        yield EventIssue(0, "?", 0, "?", FOREIGN_IN_STREAM, detail)


def _audit_row_issues(a: Entry, *witnesses: Entry | None) -> Iterator[EventIssue]:
    """The row's body against the stream's (else the store's), and its leaf hash against its body.

    A body equal to any other witness is not the altered one: when the stream holds a forged copy,
    the row the audit folded from the relay's message still equals the store's, and that stream
    message is named (`PAYLOAD_CHANGED`), not this row.
    """
    others = [w for w in witnesses if w is not None]
    problems = []
    if others and all(a.body != w.body for w in others):
        problems.append("body ≠ stream: " + body_diff(others[0].body, a.body))
    if merkle.leaf_hash(a.body).hex() != a.leaf_hash:
        problems.append("leaf_hash does not match its body")
    if problems:
        yield _issue(a, AUDIT_ROW_ALTERED, "; ".join(problems))


def _chain_issues(sides: _Sides) -> Iterator[EventIssue]:
    """Each aggregate's chain recomputed from the store; the first entry that differs from the
    audit log is named (the later entries of that aggregate differ as a consequence)."""
    chains: dict[str, bytes] = {}
    broken: set[str] = set()
    for nid in sides.store_order:
        s = sides.store[nid]
        chain = merkle.chain_hash(chains.get(s.aggregate_id, ZERO_CHAIN), s.body)
        chains[s.aggregate_id] = chain
        a = sides.audit.get(nid)
        if a is None or s.aggregate_id in broken or a.chain_hash == chain.hex():
            continue
        broken.add(s.aggregate_id)
        yield _issue(s, CHAIN_BROKEN, "the recomputed chain entry differs from audit_log's")


def _head_issues(sides: _Sides, public_key: bytes) -> Iterator[HeadIssue]:
    leaves = [merkle.leaf_hash(sides.store[nid].body) for nid in sides.store_order]
    roots = _roots_at(leaves, {_size(head) for _, head in sides.heads})
    for source, head in sides.heads:
        size = _size(head)
        if not verify_tree_head(head, public_key):
            yield HeadIssue(source, size, BAD_SIGNATURE, f"key id {head.get('key_id')}")
        expected = roots.get(size)
        if expected is None:
            detail = f"the head covers {size} leaves, the store has {len(leaves)}"
            yield HeadIssue(source, size, HEAD_ROOT_MISMATCH, detail)
        elif head.get("root_hash") != expected.hex():
            detail = f"signed {head.get('root_hash')}, store gives {expected.hex()}"
            yield HeadIssue(source, size, HEAD_ROOT_MISMATCH, detail)


def _unpublished_issues(sides: _Sides) -> Iterator[HeadIssue]:
    """An `audit_heads` row marked published whose size WL_AUDIT does not hold.

    A row is marked published only once WL_AUDIT acked its head (the projection awaits the ack
    before its batch commits, `publish_tree_head` sets the flag after it), and WL_AUDIT denies
    deletes: such a gap means the stream was deleted or rebuilt, the public copy of a commitment
    taken away. Heads are matched by size: a retried batch re-signs a size with a new timestamp.
    """
    for size, published in sorted(sides.row_heads.items()):
        if published and size not in sides.stream_head_sizes:
            detail = "marked published, but no WL_AUDIT message holds a head of this size"
            yield HeadIssue("audit_heads", size, HEAD_MISSING_FROM_STREAM, detail)


def _unrecorded_heads(sides: _Sides) -> list[int]:
    """Sizes of WL_AUDIT heads with no `audit_heads` row. Not a failure: a projector killed after
    WL_AUDIT acked its batch's head and before the batch committed leaves one, as a deleted row
    does, and the two cannot be told apart. Such a head is still checked (signature, root)."""
    return sorted(sides.stream_head_sizes - set(sides.row_heads) - {-1})


def _node_issues(sides: _Sides) -> Iterator[NodeIssue]:
    """`audit_nodes` recomputed bottom-up from `audit_log`'s leaf hashes.

    Inclusion and consistency proofs are read from these rows and nothing else here reads them: a
    node rewritten or deleted in SQL would show only as a client's proof failing. A node over a
    missing row is not judged (the row is named), nor one whose child differs (a consequence).
    """
    level, differing = 0, set[int]()
    expected = {a.leaf_index: leaf for a in sides.audit.values() if (leaf := _hex(a.leaf_hash))}
    while expected:
        now_differing: set[int] = set()
        for index, value in expected.items():
            stored = sides.nodes.get((level, index))
            if stored == value.hex():
                continue
            now_differing.add(index)
            if not {2 * index, 2 * index + 1} & differing:
                yield NodeIssue(
                    level, index, NODE_ALTERED, _node_detail(level, index, stored, value)
                )
        level, differing = level + 1, now_differing
        expected = {
            i: merkle.node_hash(expected[2 * i], expected[2 * i + 1])
            for i in {j // 2 for j in expected}
            if 2 * i in expected and 2 * i + 1 in expected
        }


def _node_detail(level: int, index: int, stored: str | None, expected: bytes) -> str:
    leaves = f"leaves {index << level}–{((index + 1) << level) - 1}"
    if stored is None:
        return f"{leaves}: the row is gone"
    return f"{leaves}: stored {stored[:16]}…, audit_log's leaves give {expected.hex()[:16]}…"


def _hex(value: str) -> bytes | None:
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def _size(head: dict[str, Any]) -> int:
    value = head.get("tree_size")
    return value if isinstance(value, int) else -1


def _roots_at(leaves: list[bytes], sizes: set[int]) -> dict[int, bytes]:
    """MTH of the first n leaves for each wanted n, in one pass over a frontier."""
    frontier, roots = merkle.Frontier(), {}
    if 0 in sizes:
        roots[0] = frontier.root()
    for leaf in leaves:
        frontier.append(leaf)
        if frontier.size in sizes:
            roots[frontier.size] = frontier.root()
    return roots


def _issue(entry: Entry, kind: str, detail: str) -> EventIssue:
    return EventIssue(
        entry.notification_id, entry.aggregate_id, entry.version, entry.event_type, kind, detail
    )


def body_diff(expected: bytes, actual: bytes, limit: int = 3) -> str:
    """The fields that differ, `field: expected → actual`, payload fields as `payload.<name>`."""
    try:
        old, new = _flat(json.loads(expected)), _flat(json.loads(actual))
    except (ValueError, TypeError):
        return "bodies differ (not JSON)"
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    parts = [f"{k}: {_short(old.get(k))} → {_short(new.get(k))}" for k in keys[:limit]]
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(parts) + more if parts else "bytes differ"


def _flat(body: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in body.items() if k != "payload"}
    flat.update({f"payload.{k}": v for k, v in dict(body.get("payload") or {}).items()})
    return flat


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "…"


# --- the command line -----------------------------------------------------------------------------


def cli_verify(
    settings: Settings, *, public_key: bytes | None = None, console: Console | None = None
) -> int:
    """`whistleloop audit verify`: runs `verify`, prints a summary and every difference.

    The public key defaults to the one of the signing key file (never created here). Exit code: 0
    clean, 1 differences found, 2 could not verify (no key, NATS or a database unreachable).
    """
    out = console or Console()
    try:
        key = public_key or _public_key(settings)
        with out.status("reading the event store, WL_EVENTS, the audit log and the signed heads…"):
            report = asyncio.run(_verify_with(settings, key))
    except Exception as error:  # the operator needs the reason, not a traceback
        out.print(f"[red]audit verify could not run:[/] {type(error).__name__}: {error}")
        return 2
    print_report(report, out)
    return 0 if report.ok else 1


def cli_sign(settings: Settings, *, console: Console | None = None) -> int:
    """`whistleloop audit sign`: signs and publishes the current tree head; prints it. 0 or 2."""
    out = console or Console()
    try:
        head = asyncio.run(_sign_with(settings))
    except Exception as error:
        out.print(f"[red]audit sign failed:[/] {type(error).__name__}: {error}")
        return 2
    out.print_json(data=head)
    return 0


def _public_key(settings: Settings) -> bytes:
    path = settings.audit_key_file()
    if not path.exists():
        raise FileNotFoundError(f"no audit signing key at {path}; pass the public key")
    return load_or_create_signer(path).public_key_raw


async def _verify_with(settings: Settings, public_key: bytes) -> VerifyReport:
    nc = await _connect(settings)
    engine = open_views_engine(settings)
    try:
        return await verify(settings, engine, nc.jetstream(), public_key)
    finally:
        engine.dispose()
        await nc.close()


async def _sign_with(settings: Settings) -> dict[str, Any]:
    signer = load_or_create_signer(settings.audit_key_file())
    nc = await _connect(settings)
    engine = open_views_engine(settings)
    try:
        await asyncio.to_thread(create_views_tables, engine)
        return await publish_tree_head(engine, signer, nc.jetstream())
    finally:
        engine.dispose()
        await nc.close()


async def _connect(settings: Settings) -> Client:
    return await connect_once(settings, "whistleloop-audit")


def print_report(report: VerifyReport, console: Console) -> None:
    """A human summary: counts, then one table row per differing event and per bad head."""
    verdict = "[green]OK[/]" if report.ok else "[red]DIFFERENCES FOUND[/]"
    console.print(
        f"audit verify: {verdict} — store {report.store_events} events, stream "
        f"{report.stream_messages}, audit_log {report.audit_rows}, heads checked "
        f"{report.heads_checked}, pending (not yet relayed/audited) {report.pending}"
    )
    if report.unrecorded_heads:
        console.print(
            f"signed heads on WL_AUDIT with no audit_heads row (left by a projector killed between "
            f"a head's ack and its commit, or by a deleted row): sizes {report.unrecorded_heads}"
        )
    if report.events:
        table = RichTable(title="events that differ")
        for column in ("notification", "case", "version", "event", "what", "detail"):
            table.add_column(column, overflow="fold")
        for e in report.events:
            table.add_row(
                str(e.notification_id), e.case_id, str(e.version), e.event_type, e.kind, e.detail
            )
        console.print(table)
    if report.heads:
        table = RichTable(title="tree heads that fail")
        for column in ("source", "tree size", "what", "detail"):
            table.add_column(column, overflow="fold")
        for h in report.heads:
            table.add_row(h.source, str(h.tree_size), h.kind, h.detail)
        console.print(table)
    if report.nodes:
        table = RichTable(title="audit_nodes rows that differ (proofs read from them fail)")
        for column in ("level", "index", "what", "detail"):
            table.add_column(column, overflow="fold")
        for n in report.nodes:
            table.add_row(str(n.level), str(n.index), n.kind, n.detail)
        console.print(table)
