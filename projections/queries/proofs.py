"""The audit trail for readers: the signed tree head, inclusion and consistency proofs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    select,
)

from domain.errors import NotFound
from projections import audit
from projections.audit import audit_heads as audit_heads_t
from projections.audit import audit_log as audit_log_t
from projections.queries.common import Db, Json, fetch_rows, invalid

# --- audit ------------------------------------------------------------------------------------


def tree_head(db: Db) -> Json:
    """The latest signed tree head (NotFound before the first one)."""
    row = _latest_head(db)
    if row is None:
        raise _no_head()
    return {**audit.signed_head(row._mapping), "published": bool(row._mapping["published"])}


def _latest_head(db: Db, size: int | None = None) -> Row[Any] | None:
    query = select(audit_heads_t)
    if size is not None:
        query = query.where(audit_heads_t.c.tree_size == size)
    rows = fetch_rows(db, query.order_by(audit_heads_t.c.tree_size.desc()).limit(1))
    return rows[0] if rows else None


def _no_head() -> NotFound:
    return NotFound("no_tree_head", "尚无签名树头", "no signed tree head yet")


def _check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid(
            f"invalid_{name}", f"{name} 须为正整数", f"{name} is a positive integer", name
        )
    return value


def _proof(db: Db, make: Callable[[Connection], list[bytes]]) -> list[str]:
    """Runs a proof helper on one connection; a size the node store cannot cover is bad input."""
    try:
        if isinstance(db, Connection):
            return [node.hex() for node in make(db)]
        with db.connect() as conn:
            return [node.hex() for node in make(conn)]
    except (LookupError, ValueError, IndexError) as error:
        raise invalid(
            "tree_size_unknown",
            "审计树尚未达到该规模",
            f"the audit tree cannot prove that: {error}",
            "tree_size",
        ) from None


def _current_size(db: Db) -> int:
    if isinstance(db, Connection):
        return audit.tree_size(db)
    with db.connect() as conn:
        return audit.tree_size(conn)


def inclusion_proof(db: Db, notification_id: int, tree_size: int | None = None) -> Json:
    """The audit path of one event in a tree of `tree_size` leaves (the latest signed head's by
    default), with that head's root when one was signed at that size."""
    _check_size("notification_id", notification_id)
    if tree_size is None:
        head = _latest_head(db)
        if head is None:
            raise _no_head()
        tree_size = int(head._mapping["tree_size"])
    else:
        _check_size("tree_size", tree_size)
        head = _latest_head(db, tree_size)
    leaf = fetch_rows(
        db,
        select(audit_log_t.c.leaf_index, audit_log_t.c.leaf_hash).where(
            audit_log_t.c.notification_id == notification_id
        ),
    )
    if not leaf:
        raise NotFound(
            "event_not_audited",
            "审计日志中无此事件",
            f"no audited event {notification_id}",
            notification_id=notification_id,
        )
    index = int(leaf[0].leaf_index)
    if not index < tree_size <= _current_size(db):
        raise invalid(
            "leaf_not_in_tree",
            "该事件不在此规模的审计树中",
            f"event {notification_id} (leaf {index}) is not in a tree of {tree_size}",
            "tree_size",
        )
    size = tree_size
    return {
        "notification_id": notification_id,
        "leaf_index": index,
        "leaf_hash": leaf[0].leaf_hash,
        "tree_size": size,
        "root_hash": head._mapping["root_hash"] if head is not None else None,
        "proof": _proof(db, lambda conn: audit.inclusion_proof(conn, index, size)),
    }


def consistency_proof(db: Db, first: int, second: int) -> Json:
    """Shows the tree of `first` leaves is a prefix of the tree of `second` leaves."""
    _check_size("first", first)
    _check_size("second", second)
    if first > second or second > _current_size(db):
        raise invalid(
            "invalid_tree_sizes",
            "树规模须满足 0 < first ≤ second ≤ 当前规模",
            "sizes must satisfy 0 < first ≤ second ≤ the current tree size",
            "second",
        )
    roots = {}
    for size in (first, second):
        head = _latest_head(db, size)
        roots[size] = head._mapping["root_hash"] if head is not None else None
    return {
        "first": first,
        "second": second,
        "first_root": roots[first],
        "second_root": roots[second],
        "proof": _proof(db, lambda conn: audit.consistency_proof(conn, first, second)),
    }
