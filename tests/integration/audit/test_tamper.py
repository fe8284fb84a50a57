"""`verify` names every rewrite of the event store done in SQL, on SQLite and PostgreSQL stores.

An audited history is built (cases relayed to real NATS, folded by the runner, heads signed), then
the store's events table is edited behind the application's back: one payload changed, one event
deleted, two events swapped, a row made undecodable, an event type rewritten, a row appended. Each is reported at exactly the notification ids it touches, with the
chain break it causes and every signed head it contradicts. An edited `audit_log` row and a forged
head are reported too. Proofs read from `audit_nodes` are checked with a verifier written here from
RFC 6962 §2.1 (independent of projections/merkle.py's RFC 9162 verifiers).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import text, update

from infra.event_codec import canonical_json
from infra.nats.server import NatsServer
from infra.settings import Settings
from infra.signing import load_or_create_signer, verify_tree_head
from infra.store import engine_of, events_table
from projections import audit
from projections.audit_verify import (
    AUDIT_ROW_ALTERED,
    BAD_SIGNATURE,
    CHAIN_BROKEN,
    HEAD_ROOT_MISMATCH,
    MISSING_FROM_STORE,
    ORDER_DIFFERS,
    PAYLOAD_CHANGED,
    UNDECODABLE,
    VerifyReport,
    cli_sign,
    cli_verify,
    print_report,
)
from tests.integration.audit.support import Audited, check, found, leaf_index, pick

pytestmark = pytest.mark.asyncio


def assert_heads_contradicted_after(report: VerifyReport, a: Audited, leaf_index: int) -> None:
    """Every head covering the edited leaf has a root the store no longer gives; no other does."""
    covering = {h["tree_size"] for h in a.heads() if h["tree_size"] > leaf_index}
    assert covering
    assert {h.tree_size for h in report.heads} == covering
    assert {h.kind for h in report.heads} == {HEAD_ROOT_MISMATCH}


def sql(audited: Audited, statement: str, **params: Any) -> None:
    with engine_of(audited.service).begin() as conn:
        conn.execute(text(statement.format(events=events_table(audited.service))), params)


def stored_state(a: Audited, notification_id: int) -> dict[str, Any]:
    """The stored `state` column: the mapper's JSON transcoding (no cipher, no compression)."""
    assert a.service.mapper.cipher is None
    assert a.service.mapper.compressor is None
    with engine_of(a.service).connect() as conn:
        raw = conn.execute(
            text(f"SELECT state FROM {events_table(a.service)} WHERE id = :id"),
            {"id": notification_id},
        ).scalar_one()
    state: dict[str, Any] = a.service.mapper.transcoder.decode(bytes(raw))
    return state


async def test_untouched_store_verifies_clean(audited: Audited) -> None:
    report = await check(audited)
    assert report.ok, report
    assert report.store_events == report.stream_messages == report.audit_rows
    assert report.store_events == len(audited.envelopes)
    assert report.heads_checked >= 2 * len(audited.heads())  # stream messages and rows
    assert report.pending == 0


async def test_changed_payload_is_named(audited: Audited) -> None:
    target = pick(audited, "CaseReported", 1)
    state = stored_state(audited, target.notification_id)
    state["title"] = "改过的标题"
    encoded = audited.service.mapper.transcoder.encode(state)
    sql(
        audited,
        "UPDATE {events} SET state = :s WHERE id = :id",
        s=encoded,
        id=target.notification_id,
    )

    report = await check(audited)
    nid = target.notification_id
    assert found(report) == {(nid, PAYLOAD_CHANGED), (nid, CHAIN_BROKEN)}
    changed = next(i for i in report.events if i.kind == PAYLOAD_CHANGED)
    assert (changed.case_id, changed.version, changed.event_type) == (
        target.aggregate_id,
        1,
        "CaseReported",
    )
    assert "payload.title" in changed.detail
    assert "改过的标题" in changed.detail
    assert_heads_contradicted_after(report, audited, leaf_index(audited, target))


async def test_deleted_event_is_named(audited: Audited) -> None:
    target = pick(audited, "Whistled", 0)
    sql(audited, "DELETE FROM {events} WHERE id = :id", id=target.notification_id)

    report = await check(audited)
    after = next(
        e
        for e in audited.envelopes
        if e.aggregate_id == target.aggregate_id and e.version == target.version + 1
    )
    assert found(report) == {
        (target.notification_id, MISSING_FROM_STORE),
        (after.notification_id, CHAIN_BROKEN),  # its predecessor is gone
    }
    missing = next(i for i in report.events if i.kind == MISSING_FROM_STORE)
    assert (missing.case_id, missing.version, missing.event_type) == (
        target.aggregate_id,
        target.version,
        "Whistled",
    )
    assert_heads_contradicted_after(report, audited, leaf_index(audited, target))


async def test_swapped_events_are_named(audited: Audited) -> None:
    """The last event of one case and the report of the next swap notification ids."""
    second = pick(audited, "CaseReported", 1)
    last_of_first = audited.envelopes[leaf_index(audited, second) - 1]
    assert last_of_first.aggregate_id != second.aggregate_id
    a, b = last_of_first.notification_id, second.notification_id
    sql(audited, "UPDATE {events} SET id = :tmp WHERE id = :a", tmp=-a, a=a)
    sql(audited, "UPDATE {events} SET id = :a WHERE id = :b", a=a, b=b)
    sql(audited, "UPDATE {events} SET id = :b WHERE id = :tmp", b=b, tmp=-a)

    report = await check(audited)
    assert found(report) == {
        (a, ORDER_DIFFERS),
        (b, ORDER_DIFFERS),
        (a, CHAIN_BROKEN),
        (b, CHAIN_BROKEN),
    }
    moved = next(i for i in report.events if i.kind == ORDER_DIFFERS and i.notification_id == a)
    assert moved.case_id == last_of_first.aggregate_id
    assert f"#{b}" in moved.detail
    assert_heads_contradicted_after(report, audited, leaf_index(audited, last_of_first))


async def test_inserted_event_at_the_tail_is_pending(audited: Audited) -> None:
    """A row written in SQL after the relay's last run (a forged closure appended to a case) looks
    exactly like a write the relay has not reached yet: verify counts it as pending, not clean.
    Once a relay publishes it, it is part of the record; what stops such a row is that only the
    application's database user may write the events table (docs/SECURITY.md)."""
    closed = pick(audited, "Closed", 0)
    forged_id = audited.envelopes[-1].notification_id + 1
    sql(
        audited,
        "INSERT INTO {events} (id, originator_id, originator_version, topic, state) "
        "SELECT :id, e.originator_id, (SELECT max(x.originator_version) + 1 FROM {events} x "
        "WHERE x.originator_id = e.originator_id), e.topic, e.state FROM {events} e "
        "WHERE e.id = :copied",
        id=forged_id,
        copied=closed.notification_id,
    )

    report = await check(audited)
    assert report.pending == 1
    assert report.store_events == len(audited.envelopes) + 1
    assert not report.events
    assert not report.heads, "signed heads cover only what came before"


async def test_corrupted_row_is_named(audited: Audited) -> None:
    target = pick(audited, "CaseAccepted", 0)
    sql(
        audited,
        "UPDATE {events} SET state = :s WHERE id = :id",
        s=b"\x00garbage",
        id=target.notification_id,
    )

    report = await check(audited)
    assert (target.notification_id, UNDECODABLE) in found(report)
    assert_heads_contradicted_after(report, audited, leaf_index(audited, target))


async def test_rewritten_event_type_is_named(audited: Audited) -> None:
    """An acceptance turned into a rejection by its topic alone, payload untouched."""
    target = pick(audited, "CaseAccepted", 0)
    sql(
        audited,
        "UPDATE {events} SET topic = :topic WHERE id = :id",
        topic=target.topic.replace("CaseAccepted", "CaseRejected"),
        id=target.notification_id,
    )

    report = await check(audited)
    assert (target.notification_id, PAYLOAD_CHANGED) in found(report)
    assert_heads_contradicted_after(report, audited, leaf_index(audited, target))


async def test_edited_audit_row_is_named(audited: Audited) -> None:
    target = pick(audited, "Closed", 0)
    body = json.loads(target.body())
    body["actor"]["id"] = "someone-else"
    with audited.views.begin() as conn:
        conn.execute(
            update(audit.audit_log)
            .where(audit.audit_log.c.notification_id == target.notification_id)
            .values(body=canonical_json(body).decode())
        )
    report = await check(audited)
    assert found(report) == {(target.notification_id, AUDIT_ROW_ALTERED)}
    assert "actor" in report.events[0].detail
    assert "leaf_hash" in report.events[0].detail
    assert not report.heads


async def test_forged_heads_are_named(
    audited: Audited, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    heads = audited.heads()
    edited = heads[1]
    with audited.views.begin() as conn:  # a stored head whose signed content was changed
        conn.execute(
            update(audit.audit_heads)
            .where(audit.audit_heads.c.tree_size == edited["tree_size"])
            .values(timestamp="2020-01-01T00:00:00.000000Z")
        )
    other = load_or_create_signer(tmp_path / "other.pem")
    forged = other.sign(5, bytes(32), "2026-03-02T01:00:00.000000Z")  # another key, a false root
    forked = audited.signer.sign(7, bytes(32), "2026-03-02T01:00:00.000000Z")  # the key, a fork
    for head in (forged, forked):
        await audited.js.publish(audit.HEAD_SUBJECT, canonical_json(head))

    report = await check(audited)
    assert not report.events
    issues = {(h.source.split(" seq")[0], h.tree_size, h.kind) for h in report.heads}
    assert issues == {
        ("audit_heads", edited["tree_size"], BAD_SIGNATURE),
        ("WL_AUDIT", 5, BAD_SIGNATURE),
        ("WL_AUDIT", 5, HEAD_ROOT_MISMATCH),
        ("WL_AUDIT", 7, HEAD_ROOT_MISMATCH),
    }
    print_report(report, Console(width=200))
    printed = capsys.readouterr().out
    assert "DIFFERENCES FOUND" in printed
    assert "bad signature" in printed


# --- proofs, checked by a verifier written from RFC 6962 §2.1 ----------------------------------


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def largest_power_of_two_below(n: int) -> int:
    k = 1
    while 2 * k < n:
        k *= 2
    return k


def root_from_path(leaf: bytes, m: int, n: int, path: list[bytes]) -> bytes:
    """MTH(D[n]) from leaf m and PATH(m, D[n]), by the RFC's recursion (last element = top)."""
    if n == 1:
        assert not path
        return leaf
    k, sibling, rest = largest_power_of_two_below(n), path[-1], path[:-1]
    if m < k:
        return h(b"\x01" + root_from_path(leaf, m, k, rest) + sibling)
    return h(b"\x01" + sibling + root_from_path(leaf, m - k, n - k, rest))


def roots_from_consistency(
    m: int, n: int, proof: list[bytes], old_root: bytes, complete: bool = True
) -> tuple[bytes, bytes]:
    """(MTH of the first m leaves, MTH of all n) of a range, rebuilt from SUBPROOF(m, D[n], b)."""
    if m == n:
        if complete:
            assert not proof
            return old_root, old_root
        assert len(proof) == 1
        return proof[0], proof[0]
    k, sibling, rest = largest_power_of_two_below(n), proof[-1], proof[:-1]
    if m <= k:
        old, new = roots_from_consistency(m, k, rest, old_root, complete)
        return old, h(b"\x01" + new + sibling)
    old, new = roots_from_consistency(m - k, n - k, rest, old_root, False)
    return h(b"\x01" + sibling + old), h(b"\x01" + sibling + new)


async def test_proofs_from_the_node_store_verify_independently(audited: Audited) -> None:
    heads = audited.heads()
    public = audited.signer.public_key_raw
    assert all(verify_tree_head(head, public) for head in heads)
    old, new = heads[1], heads[-1]
    leaves = [h(b"\x00" + e.body()) for e in audited.envelopes]
    with audited.views.connect() as conn:
        for head in (old, new):
            size, root = head["tree_size"], bytes.fromhex(head["root_hash"])
            for m in sorted({0, 1, size // 2, size - 2, size - 1}):
                path = audit.inclusion_proof(conn, m, size)
                assert root_from_path(leaves[m], m, size, path) == root
                assert root_from_path(h(b"\x00tampered"), m, size, path) != root
        proof = audit.consistency_proof(conn, old["tree_size"], new["tree_size"])
        assert audit.tree_size(conn) == len(leaves)
    old_root, new_root = bytes.fromhex(old["root_hash"]), bytes.fromhex(new["root_hash"])
    assert roots_from_consistency(old["tree_size"], new["tree_size"], proof, old_root) == (
        old_root,
        new_root,
    )
    # A proof with any node changed does not reproduce both heads.
    for i in range(len(proof)):
        bent = [*proof[:i], h(proof[i]), *proof[i + 1 :]]
        rebuilt = roots_from_consistency(old["tree_size"], new["tree_size"], bent, old_root)
        assert rebuilt != (old_root, new_root)


async def test_cli_entry_points_exit_codes(
    audited: Audited, store_settings: Settings, nats_server: NatsServer, tmp_path: Path
) -> None:
    """The functions `whistleloop audit verify|sign` call: 0 clean, 1 on a difference, 2 no key."""
    settings = store_settings.model_copy(
        update={
            "nats_url": nats_server.url,
            "views_database_url": str(audited.views.url),
            "audit_key_path": str(tmp_path / "audit.pem"),
        }
    )
    console = Console(width=200, record=True)
    assert await asyncio.to_thread(cli_sign, settings, console=console) == 0
    assert await asyncio.to_thread(cli_verify, settings, console=console) == 0
    with audited.views.begin() as conn:
        conn.execute(update(audit.audit_log).values(leaf_hash="00" * 32))
    assert await asyncio.to_thread(cli_verify, settings, console=console) == 1
    assert "audit row altered" in console.export_text()
    missing = settings.model_copy(update={"audit_key_path": str(tmp_path / "none.pem")})
    assert await asyncio.to_thread(cli_verify, missing, console=console) == 2
    assert "no audit signing key" in console.export_text()
