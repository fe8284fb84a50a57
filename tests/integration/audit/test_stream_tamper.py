"""`verify` names tampering with the streams and with the audit's own tables, on both kinds of store.

test_tamper.py rewrites the event store; here the other witnesses are changed behind the
application's back. WL_EVENTS and WL_AUDIT deny deletes and purges and the server will not lift
that, so what an operator with the streams' admin rights can do is tried: delete a stream
and create it again without the guard, copied back or forged, then delete or purge. In the views
database rows of `audit_log`, `audit_heads` and `audit_nodes` are deleted or edited in SQL. Each
test asserts exactly what `verify` reports, and that nothing else is reported.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Awaitable, Callable

import pytest
from nats.js import JetStreamContext
from nats.js.errors import APIError
from rich.console import Console
from sqlalchemy import delete, update

from infra.event_codec import HEADER_MSG_ID, HEADER_NOTIFICATION, EventEnvelope, canonical_json
from infra.nats.streams import (
    AUDIT_STREAM,
    AUDIT_SUBJECTS,
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
    ensure_streams,
)
from projections import audit, merkle
from projections.audit_verify import (
    FOREIGN_IN_STREAM,
    HEAD_MISSING_FROM_STREAM,
    MISSING_FROM_AUDIT,
    MISSING_FROM_STORE,
    MISSING_FROM_STREAM,
    NODE_ALTERED,
    PAYLOAD_CHANGED,
    REPEATED_IN_STREAM,
    VerifyReport,
    print_report,
)
from projections.base import StoredMessage, read_messages
from projections.queries import inclusion_proof
from projections.queries.verify import NOT_INCLUDED, verify_case
from tests.integration.audit.support import Audited, check, found, leaf_index, pick

pytestmark = pytest.mark.asyncio

#: JetStream's refusals: a guarded stream's message delete / purge, lifting the guard.
DELETE_NOT_PERMITTED, PURGE_NOT_PERMITTED, CANNOT_CANCEL_DENY_DELETE = 10057, 10110, 10052

#: Which event a test tampers with, chosen from the audited history.
TARGETS: dict[str, Callable[[Audited], EventEnvelope]] = {
    "inside": lambda a: pick(a, "Whistled", 0),
    "last": lambda a: a.envelopes[-1],
}


async def refused(call: Awaitable[object], err_code: int) -> None:
    with pytest.raises(APIError) as refusal:
        await call
    assert refusal.value.err_code == err_code


async def recreate_unguarded(
    js: JetStreamContext, stream: str, messages: list[StoredMessage]
) -> None:
    """Deletes `stream` and creates it again without its guard against deletes and purges, holding
    `messages` in that order (sequences from 1, subjects, headers and bodies as given)."""
    config = (await js.stream_info(stream)).config
    config.deny_delete = config.deny_purge = False
    await refused(js.update_stream(config), CANNOT_CANCEL_DENY_DELETE)
    await js.delete_stream(stream)
    await js.add_stream(config)
    for message in messages:
        await js.publish(message.subject, message.data, headers=message.headers or None)


async def unguard(js: JetStreamContext, stream: str, subjects: str) -> list[StoredMessage]:
    """The stream copied back into itself, deletable: first, the delete it denies is refused."""
    messages = await read_messages(js, stream, subjects)
    await refused(js.delete_msg(stream, messages[0].seq), DELETE_NOT_PERMITTED)
    await recreate_unguarded(js, stream, messages)
    return messages


def carrying(messages: list[StoredMessage], notification_id: int) -> StoredMessage:
    return next(m for m in messages if m.headers.get(HEADER_NOTIFICATION) == str(notification_id))


def forged_copy(envelope: EventEnvelope, title: str) -> tuple[bytes, dict[str, str]]:
    """The event's WL_EVENTS message with its title changed, under a message id of its own (under
    the relay's id the server drops it as a re-send: checked where it is published)."""
    body = json.loads(envelope.body())
    body["payload"]["title"] = title
    headers = {**envelope.headers(), HEADER_MSG_ID: "forged"}
    return canonical_json(body), headers


def printed(report: VerifyReport) -> str:
    """What `whistleloop audit verify` prints for the report."""
    console = Console(width=200, record=True, file=io.StringIO())
    print_report(report, console)
    return console.export_text()


def assert_only_events(report: VerifyReport, expected: set[tuple[int, str]]) -> None:
    """Exactly these (notification, kind) issues; no head or node issue, nothing pending."""
    assert found(report) == expected
    assert not report.heads
    assert not report.nodes
    assert report.pending == 0


# --- WL_EVENTS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", TARGETS)
async def test_message_deleted_from_the_stream_is_named(audited: Audited, where: str) -> None:
    """The last message too: the audit folded it from the stream, so it is not "pending"."""
    target = TARGETS[where](audited)
    messages = await unguard(audited.js, EVENTS_STREAM, EVENTS_SUBJECTS)
    await audited.js.delete_msg(EVENTS_STREAM, carrying(messages, target.notification_id).seq)

    report = await check(audited)
    assert_only_events(report, {(target.notification_id, MISSING_FROM_STREAM)})
    (missing,) = report.events
    assert (missing.case_id, missing.version) == (target.aggregate_id, target.version)
    assert report.stream_messages == len(audited.envelopes) - 1


async def test_second_copy_with_another_body_is_named(audited: Audited) -> None:
    target = pick(audited, "CaseReported", 1)
    body, headers = forged_copy(target, "改过的标题")
    resent = await audited.js.publish(target.subject, body, headers=target.headers())
    assert resent.duplicate, "under the relay's message id the server drops it"
    ack = await audited.js.publish(target.subject, body, headers=headers)

    report = await check(audited)
    assert_only_events(report, {(target.notification_id, REPEATED_IN_STREAM)})
    (repeated,) = report.events
    assert f"seq {ack.seq}" in repeated.detail
    assert "payload.title" in repeated.detail
    assert "改过的标题" in repeated.detail
    assert REPEATED_IN_STREAM in printed(report)


async def test_forged_copy_ahead_of_the_original_is_named(audited: Audited) -> None:
    """Copied into a re-created stream just before the relay's message: readers take the forgery."""
    target = pick(audited, "CaseAccepted", 0)
    messages = await read_messages(audited.js, EVENTS_STREAM, EVENTS_SUBJECTS)
    original = carrying(messages, target.notification_id)
    body, headers = forged_copy(target, "forged first")
    at = messages.index(original)
    forged = StoredMessage(0, original.subject, headers, body)
    await recreate_unguarded(audited.js, EVENTS_STREAM, [*messages[:at], forged, *messages[at:]])

    report = await check(audited)
    nid = target.notification_id
    assert_only_events(report, {(nid, PAYLOAD_CHANGED), (nid, REPEATED_IN_STREAM)})
    repeated = next(i for i in report.events if i.kind == REPEATED_IN_STREAM)
    assert "the same body" in repeated.detail, "the second copy is the relay's"


async def test_message_the_store_never_had_is_named(audited: Audited) -> None:
    closed = pick(audited, "Closed", 0)
    forged_id = audited.envelopes[-1].notification_id + 1
    body = json.loads(closed.body())
    body.update(notification_id=forged_id, version=closed.version + 1)
    headers = {**closed.headers(), HEADER_MSG_ID: "forged", HEADER_NOTIFICATION: str(forged_id)}
    await audited.js.publish(closed.subject, canonical_json(body), headers=headers)

    report = await check(audited)
    assert_only_events(report, {(forged_id, MISSING_FROM_STORE)})
    assert report.stream_messages == len(audited.envelopes) + 1


async def test_message_without_a_notification_id_is_named(audited: Audited) -> None:
    """Not the relay's (it always names the notification): readers would halt on it or pass it by."""
    closed = pick(audited, "Closed", 0)
    headers = {k: v for k, v in closed.headers().items() if k != HEADER_NOTIFICATION}
    ack = await audited.js.publish(
        closed.subject, closed.body(), headers=headers | {HEADER_MSG_ID: "x"}
    )

    report = await check(audited)
    assert_only_events(report, {(0, FOREIGN_IN_STREAM)})
    assert f"seq {ack.seq}" in report.events[0].detail
    assert FOREIGN_IN_STREAM in printed(report)


@pytest.mark.parametrize("how", ["purged", "deleted and created again empty"])
async def test_emptied_stream_names_every_event(audited: Audited, how: str) -> None:
    """Not "pending": every event is in the audit log, which only the stream could have fed."""
    js = audited.js
    if how == "purged":
        await refused(js.purge_stream(EVENTS_STREAM), PURGE_NOT_PERMITTED)
        await unguard(js, EVENTS_STREAM, EVENTS_SUBJECTS)
        await js.purge_stream(EVENTS_STREAM)
    else:
        await js.delete_stream(EVENTS_STREAM)
        await ensure_streams(js)

    report = await check(audited)
    everything = {(e.notification_id, MISSING_FROM_STREAM) for e in audited.envelopes}
    assert_only_events(report, everything)
    assert report.stream_messages == 0


# --- WL_AUDIT and audit_heads ---------------------------------------------------------------------


def head_issues(report: VerifyReport) -> set[tuple[str, int, str]]:
    return {(h.source, h.tree_size, h.kind) for h in report.heads}


@pytest.mark.parametrize("how", ["one deleted", "purged", "deleted and created again empty"])
async def test_heads_gone_from_wl_audit_are_named(audited: Audited, how: str) -> None:
    """`audit_heads` still holds them, marked published (acked by WL_AUDIT): the public copy of a
    commitment was taken away. WL_AUDIT denies deletes and purges: both need the guard lifted."""
    js, sizes = audited.js, [h["tree_size"] for h in audited.heads()]
    if how == "one deleted":
        messages = await unguard(js, AUDIT_STREAM, AUDIT_SUBJECTS)
        gone = [sizes[1]]
        doomed = next(m for m in messages if json.loads(m.data)["tree_size"] == gone[0])
        await js.delete_msg(AUDIT_STREAM, doomed.seq)
    elif how == "purged":
        gone = sizes
        await refused(js.purge_stream(AUDIT_STREAM), PURGE_NOT_PERMITTED)
        await unguard(js, AUDIT_STREAM, AUDIT_SUBJECTS)
        await js.purge_stream(AUDIT_STREAM)
    else:
        gone = sizes
        await js.delete_stream(AUDIT_STREAM)
        await ensure_streams(js)

    report = await check(audited)
    assert not report.events
    assert not report.nodes
    assert head_issues(report) == {("audit_heads", s, HEAD_MISSING_FROM_STREAM) for s in gone}
    assert HEAD_MISSING_FROM_STREAM in printed(report)


async def test_head_row_deleted_is_told_not_failed(audited: Audited) -> None:
    """A WL_AUDIT head with no row is also what a projector killed between the head's ack and its
    batch's commit leaves: not a failure, but printed; the WL_AUDIT copy is still checked."""
    before = await check(audited)
    size = audited.heads()[1]["tree_size"]
    with audited.views.begin() as conn:
        conn.execute(delete(audit.audit_heads).where(audit.audit_heads.c.tree_size == size))

    report = await check(audited)
    assert report.ok, report
    assert report.unrecorded_heads == [size]
    assert report.heads_checked == before.heads_checked - 1
    assert "no audit_heads row (left by a projector killed" in printed(report)
    assert f"sizes [{size}]" in printed(report)


# --- audit_log and audit_nodes --------------------------------------------------------------------


@pytest.mark.parametrize("where", TARGETS)
async def test_audit_row_deleted_is_named(audited: Audited, where: str) -> None:
    """No chain break after it: chains are recomputed from the store, whose events are all there.
    The last row too: a signed head covers it, so it is not "pending"; no node is judged over it."""
    target = TARGETS[where](audited)
    with audited.views.begin() as conn:
        conn.execute(
            delete(audit.audit_log).where(
                audit.audit_log.c.notification_id == target.notification_id
            )
        )

    report = await check(audited)
    assert_only_events(report, {(target.notification_id, MISSING_FROM_AUDIT)})
    assert report.audit_rows == len(audited.envelopes) - 1


def sibling_node(a: Audited, target: EventEnvelope) -> tuple[int, int]:
    """(level 1, index) of the pair beside the target's pair: on the target's audit path."""
    index = (leaf_index(a, target) >> 1) ^ 1
    assert 2 * index + 1 < a.heads()[-1]["tree_size"]
    return 1, index


def set_node(a: Audited, node: tuple[int, int], hash_hex: str | None) -> None:
    """Rewrites an `audit_nodes` row, or deletes it when `hash_hex` is None."""
    t = audit.audit_nodes
    where = (t.c.level == node[0]) & (t.c.idx == node[1])
    with a.views.begin() as conn:
        if hash_hex is None:
            conn.execute(delete(t).where(where))
        else:
            conn.execute(update(t).where(where).values(hash=hash_hex))


def case_check_names_not_included(a: Audited, target: EventEnvelope) -> None:
    """The inspector's per-case check (the proof endpoint's path) fails the target's event."""
    checked = verify_case(a.service, a.views, target.aggregate_id, a.signer.public_key_raw)
    event = next(e for e in checked["events"] if e["notification_id"] == target.notification_id)
    assert event["issues"] == [NOT_INCLUDED]
    assert not checked["ok"]


@pytest.mark.parametrize("how", ["edited", "deleted"])
async def test_tampered_node_is_named_and_fails_proofs(audited: Audited, how: str) -> None:
    target = pick(audited, "CaseAccepted", 0)
    node = sibling_node(audited, target)
    set_node(audited, node, hashlib.sha256(b"forged").hexdigest() if how == "edited" else None)

    report = await check(audited)
    assert not report.events
    assert not report.heads
    assert [(n.level, n.index, n.kind) for n in report.nodes] == [(*node, NODE_ALTERED)]
    assert ("the row is gone" in report.nodes[0].detail) is (how == "deleted")
    assert NODE_ALTERED in printed(report)
    case_check_names_not_included(audited, target)


async def test_edited_node_bends_the_proofs_that_use_it(audited: Audited) -> None:
    """The proof endpoint's answers, checked with projections.merkle's verifier against the signed
    head: the audit path through the node fails, the path of a leaf under it (which does not use
    it) still verifies."""
    target = pick(audited, "CaseAccepted", 0)
    node = sibling_node(audited, target)
    set_node(audited, node, hashlib.sha256(b"forged").hexdigest())
    head = audited.heads()[-1]
    beside = audited.envelopes[2 * node[1]]  # under the node: not on its own audit path
    for event, verifies in ((target, False), (beside, True)):
        answer = inclusion_proof(audited.views, event.notification_id)
        assert (answer["tree_size"], answer["root_hash"]) == (head["tree_size"], head["root_hash"])
        ok = merkle.verify_inclusion(
            merkle.leaf_hash(event.body()),
            answer["leaf_index"],
            answer["tree_size"],
            [bytes.fromhex(node_hex) for node_hex in answer["proof"]],
            bytes.fromhex(head["root_hash"]),
        )
        assert ok is verifies
