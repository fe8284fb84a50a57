"""One case's audit, checked for an inspector: the EVENT STORE against `audit_log` and the signed head.

`whistleloop audit verify` checks the whole log offline; this checks one case while a person waits.
Each of the case's stored events is encoded as the relay encodes it (`EventEnvelope`, canonical
body, the case's street from its CaseReported), hashed as the audit projection hashes it (the leaf
`merkle.leaf_hash`, the chain `merkle.chain_hash` from 32 zero bytes), and compared with its
`audit_log` row. The store's own leaf is then proved, by an audit path from `audit_nodes`, against
the root of the latest signed tree head, whose Ed25519 signature is checked with the public half of
the audit key: so a rewritten row, node or head shows, and so does a rewritten store.

Events the audit has not reached yet, or that came after the head, are "pending": not failures.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, select

from domain.errors import NotFound
from domain.service import CaseService
from infra.event_codec import EventEnvelope
from infra.signing import load_or_create_signer, verify_tree_head
from infra.store import case_notifications
from projections import audit, merkle
from projections.audit import ZERO_CHAIN, AuditState, audit_log
from projections.queries.common import Db, Json
from projections.queries.proofs import tree_head

PENDING = "pending"

#: Why an event fails, as stable codes the dashboard translates.
BODY_DIFFERS = "body_differs"
LEAF_DIFFERS = "leaf_differs"
CHAIN_BROKEN = "chain_broken"
NOT_INCLUDED = "not_included"
MISSING_FROM_AUDIT = "missing_from_audit"
MISSING_FROM_STORE = "missing_from_store"
UNDECODABLE = "undecodable"


@dataclass(frozen=True)
class _Stored:
    """One stored event as the relay would publish it, with the hashes the audit should hold."""

    notification_id: int
    version: int
    event_type: str
    body: bytes
    leaf: bytes
    chain: bytes
    decodable: bool


def audit_public_key(key_file: Path) -> bytes | None:
    """The raw public key of the audit's signing key file; None when there is none to check with.

    Never creates the key (as `load_or_create_signer` alone would): a missing key is a finding.
    """
    return load_or_create_signer(key_file).public_key_raw if key_file.exists() else None


def verify_case(service: CaseService, views: Db, case_id: str, public_key: bytes | None) -> Json:
    """Each event of the case recomputed from the store and checked (see the module docstring)."""
    stored = _stored_events(service, UUID(case_id))
    if not stored:
        raise NotFound("case_not_found", "案件不存在", f"no case {case_id}")
    with nullcontext(views) if isinstance(views, Connection) else views.connect() as conn:
        rows = {int(r.notification_id): r for r in _audit_rows(conn, case_id)}
        audited_through = AuditState.load(conn).last_notification_id
        head = _latest_head(conn)
        size = int(head["tree_size"]) if head else 0
        root = bytes.fromhex(head["root_hash"]) if head else b""
        events = [
            _check_event(conn, s, rows.pop(s.notification_id, None), audited_through, size, root)
            for s in stored
        ]
    events.extend(_orphan(row) for row in rows.values())  # audited, but gone from the store
    signature_ok = _signature_ok(head, public_key)
    return {
        "case_id": case_id,
        "ok": all(e["ok"] for e in events) and (head is None or signature_ok is True),
        "tree_size": size,
        "root_hash": head["root_hash"] if head else None,
        "head_signature_ok": signature_ok,
        "audited_through": audited_through,
        "events": events,
    }


# --- the store's side -----------------------------------------------------------------------------


def _stored_events(service: CaseService, case_id: UUID) -> list[_Stored]:
    """The case's events from the store, in notification order, encoded and hashed."""
    result: list[_Stored] = []
    street, chain = "", ZERO_CHAIN
    for notification in case_notifications(service, case_id):
        event_type = notification.topic.rsplit(".", 1)[-1]
        try:
            envelope = EventEnvelope.from_notification(notification, service.mapper, street)
            if notification.originator_version == 1:  # CaseReported carries the street
                street = str(envelope.payload["street"])
                envelope = replace(envelope, street=street)
            body, decodable = envelope.body(), True
        except Exception as error:  # a tampered row may not decode at all
            body, decodable = f"undecodable: {type(error).__name__}: {error}".encode(), False
        chain = merkle.chain_hash(chain, body)
        result.append(
            _Stored(
                notification.id,
                notification.originator_version,
                event_type,
                body,
                merkle.leaf_hash(body),
                chain,
                decodable,
            )
        )
    return result


# --- the audit's side -----------------------------------------------------------------------------


def _audit_rows(conn: Connection, case_id: str) -> list[Row[Any]]:
    c = audit_log.c
    query = (
        select(
            c.leaf_index,
            c.notification_id,
            c.version,
            c.event_type,
            c.body,
            c.leaf_hash,
            c.chain_hash,
        )
        .where(c.aggregate_id == case_id)
        .order_by(c.version)
    )
    return list(conn.execute(query).all())


def _latest_head(conn: Connection) -> Json | None:
    try:
        return tree_head(conn)
    except NotFound:
        return None


def _signature_ok(head: Json | None, public_key: bytes | None) -> bool | None:
    """The head's Ed25519 signature: None when there is no head or no key to check it with."""
    if head is None or public_key is None:
        return None
    signed = {k: v for k, v in head.items() if k != "published"}
    return verify_tree_head(signed, public_key)


# --- comparing ------------------------------------------------------------------------------------


def _check_event(
    conn: Connection,
    stored: _Stored,
    row: Row[Any] | None,
    audited_through: int,
    size: int,
    root: bytes,
) -> Json:
    issues = [] if stored.decodable else [UNDECODABLE]
    found = _event(stored.notification_id, stored.version, stored.event_type, stored, row)
    if row is None:
        if stored.notification_id <= audited_through:
            issues.append(MISSING_FROM_AUDIT)
        return _verdict(found, None, PENDING, issues)
    if row.body.encode("utf-8") != stored.body:
        issues.append(BODY_DIFFERS)
    if row.leaf_hash != stored.leaf.hex():
        issues.append(LEAF_DIFFERS)
    chain_ok = row.chain_hash == stored.chain.hex()
    if not chain_ok:
        issues.append(CHAIN_BROKEN)
    index = int(row.leaf_index)
    included: bool | str = PENDING if index >= size else _included(conn, stored, index, size, root)
    if included is False:
        issues.append(NOT_INCLUDED)
    return _verdict(found, chain_ok, included, issues)


def _verdict(found: Json, chain_ok: bool | None, included: bool | str, issues: list[str]) -> Json:
    return {**found, "chain_ok": chain_ok, "included": included, "issues": issues, "ok": not issues}


def _included(conn: Connection, stored: _Stored, index: int, size: int, root: bytes) -> bool:
    """The STORE's leaf (not the row's) proved against the signed root by the stored audit path."""
    try:
        path = audit.inclusion_proof(conn, index, size)
    except (LookupError, ValueError, IndexError):
        return False
    return merkle.verify_inclusion(stored.leaf, index, size, path, root)


def _orphan(row: Row[Any]) -> Json:
    """An `audit_log` row of the case with no event in the store: deleted from the source."""
    found = _event(int(row.notification_id), int(row.version), row.event_type, None, row)
    return _verdict(found, False, False, [MISSING_FROM_STORE])


def _event(
    notification_id: int,
    version: int,
    event_type: str,
    stored: _Stored | None,
    row: Row[Any] | None,
) -> Json:
    """The two sides' hashes of one event; the caller adds the verdicts."""
    return {
        "version": version,
        "event_type": event_type,
        "notification_id": notification_id,
        "leaf_index": int(row.leaf_index) if row is not None else None,
        "leaf_hash": row.leaf_hash if row is not None else None,
        "store_leaf_hash": stored.leaf.hex() if stored else None,
        "chain_hash": row.chain_hash if row is not None else None,
        "store_chain_hash": stored.chain.hex() if stored else None,
    }
