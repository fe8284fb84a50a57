"""RFC 6962 Merkle tree hashing, proofs and their verification, and the per-case hash chain.

The audit log (issue 5) hashes every event's canonical body in notification order. Leaves and nodes
use the RFC's domain-separation prefixes (0x00 for a leaf, 0x01 for a node), so no leaf can pass for
a node. The list-based functions take every leaf hash (fine for tests and small trees); the `*_from`
functions take a `Subtree` lookup instead, so a proof in a tree of millions of leaves costs O(log n)
lookups of stored perfect subtrees (the audit projection's `audit_nodes`), and `Frontier` keeps the
O(log n) right edge of a growing tree, from which new nodes and the current root follow.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

EMPTY_ROOT = hashlib.sha256(b"").digest()

#: (start, size) -> MTH of the leaves [start, start + size): asked only for perfect, aligned subtrees
#: (size a power of two, start a multiple of size), which a node store keeps as (level, start/size).
Subtree = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def chain_hash(previous: bytes, data: bytes) -> bytes:
    """A case's hash chain: entry = sha256(previous entry || canonical JSON of the event)."""
    return hashlib.sha256(previous + data).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (RFC 6962 §2.1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def node_key(start: int, size: int) -> tuple[int, int]:
    """(level, index) of a perfect aligned subtree: level 0 holds the leaves."""
    level = size.bit_length() - 1
    if size <= 0 or size != 1 << level or start % size:
        raise ValueError(f"[{start}, {start + size}) is not a perfect aligned subtree")
    return level, start >> level


def list_subtree(leaves: Sequence[bytes]) -> Subtree:
    """A `Subtree` over an in-memory list of leaf hashes."""
    return lambda start, size: root(leaves[start : start + size])


def subtree_root(start: int, size: int, subtree: Subtree) -> bytes:
    """MTH(D[start:start+size]) split per RFC 6962 §2.1 down to perfect aligned subtrees.

    A right edge of n leaves is a perfect subtree per set bit of n: O(log n) lookups.
    """
    if size == 0:
        return EMPTY_ROOT
    if size & (size - 1) == 0 and start % size == 0:
        return subtree(start, size)
    k = _split(size)
    return node_hash(subtree_root(start, k, subtree), subtree_root(start + k, size - k, subtree))


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the audit path of leaf `index` in the tree of `leaves`."""
    return inclusion_proof_from(index, len(leaves), list_subtree(leaves))


def inclusion_proof_from(index: int, size: int, subtree: Subtree) -> list[bytes]:
    """PATH(index, D[size]) from stored subtrees: O(log size) lookups."""
    if not 0 <= index < size:
        raise IndexError(f"leaf {index} is not in a tree of {size}")
    return _path(index, 0, size, subtree)


def _path(m: int, start: int, n: int, subtree: Subtree) -> list[bytes]:
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, start, k, subtree), subtree_root(start + k, n - k, subtree)]
    return [*_path(m - k, start + k, n - k, subtree), subtree_root(start, k, subtree)]


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): shows the tree of the first `old_size` leaves is a prefix of this one."""
    return consistency_proof_from(old_size, len(leaves), list_subtree(leaves))


def consistency_proof_from(old_size: int, size: int, subtree: Subtree) -> list[bytes]:
    """PROOF(old_size, D[size]) from stored subtrees: O(log size) lookups."""
    if not 0 < old_size <= size:
        raise ValueError(f"no consistency proof from {old_size} to {size}")
    return _subproof(old_size, 0, size, True, subtree)


def _subproof(m: int, start: int, n: int, complete: bool, subtree: Subtree) -> list[bytes]:
    if m == n:
        return [] if complete else [subtree_root(start, n, subtree)]
    k = _split(n)
    if m <= k:
        rest = subtree_root(start + k, n - k, subtree)
        return [*_subproof(m, start, k, complete, subtree), rest]
    return [*_subproof(m - k, start + k, n - k, False, subtree), subtree_root(start, k, subtree)]


@dataclass
class Frontier:
    """The right edge of a tree: the roots of its perfect subtrees, largest first (one per set bit
    of `size`). Appending a leaf returns the nodes it completes, which is all a node store needs."""

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Adds a leaf; returns every subtree it completes as (level, index, hash), leaf first."""
        index, level, current = self.size, 0, leaf
        completed = [(0, index, leaf)]
        while index & 1:  # a right child: merge with the left sibling on the edge
            current = node_hash(self.hashes.pop(), current)
            index, level = index >> 1, level + 1
            completed.append((level, index, current))
        self.hashes.append(current)
        self.size += 1
        return completed

    def root(self) -> bytes:
        """MTH of the whole tree: the edge folded from the right, O(log n)."""
        if not self.hashes:
            return EMPTY_ROOT
        current = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            current = node_hash(left, current)
        return current

    def to_json(self) -> str:
        return json.dumps([h.hex() for h in self.hashes])

    @classmethod
    def from_json(cls, size: int, text: str) -> Frontier:
        hashes = [bytes.fromhex(h) for h in json.loads(text)]
        if len(hashes) != size.bit_count():
            raise ValueError(f"a frontier of {len(hashes)} hashes cannot be a tree of {size}")
        return cls(size, hashes)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: recompute the root from a leaf hash and its audit path."""
    if not 0 <= index < size:
        return False
    fn, sn, current = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            current = node_hash(sibling, current)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            current = node_hash(current, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and current == expected_root


def verify_consistency(
    old_size: int, old_root: bytes, new_size: int, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: the old tree head is a prefix of the new one."""
    if old_size == new_size:
        return old_root == new_root and not proof
    if not 0 < old_size < new_size or not proof:
        return False
    nodes = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root starts the path
        nodes.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = nodes[0]
    for node in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(node, fr), node_hash(node, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, node)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root
