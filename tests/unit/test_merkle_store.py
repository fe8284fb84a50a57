"""Node-store-backed proofs and the frontier agree with the list-based RFC 6962 functions, and cost
O(log n) lookups: a proof in a tree of a million leaves reads a few dozen stored subtrees."""

from __future__ import annotations

import hashlib
import math

import pytest

from projections import merkle


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def node_store(items: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every complete perfect subtree, keyed (level, index), as the frontier emits them."""
    frontier, store = merkle.Frontier(), {}
    for leaf in items:
        for level, index, digest in frontier.append(leaf):
            store[(level, index)] = digest
    return store


class Lookups:
    """A `Subtree` over a node store that counts its lookups and refuses imperfect ranges."""

    def __init__(self, store: dict[tuple[int, int], bytes]) -> None:
        self.store = store
        self.calls = 0

    def __call__(self, start: int, size: int) -> bytes:
        self.calls += 1
        return self.store[merkle.node_key(start, size)]


@pytest.mark.parametrize("n", range(1, 70))
def test_frontier_root_and_nodes_equal_the_tree(n: int) -> None:
    items = leaves(n)
    frontier = merkle.Frontier()
    store: dict[tuple[int, int], bytes] = {}
    for i, leaf in enumerate(items):
        for level, index, digest in frontier.append(leaf):
            store[(level, index)] = digest
        assert frontier.root() == merkle.root(items[: i + 1])
    for (level, index), digest in store.items():
        assert digest == merkle.root(items[index << level : (index + 1) << level])
    perfect = sum(n >> level for level in range(n.bit_length()))
    assert len(store) == perfect
    restored = merkle.Frontier.from_json(n, frontier.to_json())
    assert restored == frontier


def test_empty_frontier_and_bad_json() -> None:
    assert merkle.Frontier().root() == merkle.EMPTY_ROOT
    with pytest.raises(ValueError, match="cannot be a tree of 3"):
        merkle.Frontier.from_json(3, '["00"]')


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 13, 16, 31, 33, 64, 65])
def test_store_proofs_equal_list_proofs(n: int) -> None:
    items = leaves(n)
    lookup = Lookups(node_store(items))
    for m in range(n):
        assert merkle.inclusion_proof_from(m, n, lookup) == merkle.inclusion_proof(m, items)
    for old in range(1, n + 1):
        assert merkle.consistency_proof_from(old, n, lookup) == merkle.consistency_proof(old, items)
    assert merkle.subtree_root(0, n, lookup) == merkle.root(items)


def test_node_key_refuses_imperfect_or_unaligned_ranges() -> None:
    assert merkle.node_key(8, 4) == (2, 2)
    for start, size in ((0, 3), (2, 4), (0, 0)):
        with pytest.raises(ValueError, match="not a perfect aligned subtree"):
            merkle.node_key(start, size)


def test_proofs_in_a_million_leaves_cost_logarithmic_lookups() -> None:
    """The store is synthetic (any hash per key will do for counting): no million hashes needed."""

    def fake(start: int, size: int) -> bytes:
        lookup.calls += 1
        level, index = merkle.node_key(start, size)
        return hashlib.sha256(f"{level}:{index}".encode()).digest()

    lookup = Lookups({})
    n = 1_000_003
    bound = 2 * math.ceil(math.log2(n)) + 2
    for m in (0, 1, 524_287, 524_288, 999_999, n - 1):
        lookup.calls = 0
        proof = merkle.inclusion_proof_from(m, n, fake)
        assert len(proof) <= math.ceil(math.log2(n))
        assert lookup.calls <= bound, (m, lookup.calls)
    for old in (1, 2, 1000, 524_288, 777_777, n - 1):
        lookup.calls = 0
        merkle.consistency_proof_from(old, n, fake)
        assert lookup.calls <= bound, (old, lookup.calls)


def test_store_proofs_verify() -> None:
    items = leaves(45)
    lookup = Lookups(node_store(items))
    head = merkle.root(items)
    for m in (0, 17, 44):
        path = merkle.inclusion_proof_from(m, 45, lookup)
        assert merkle.verify_inclusion(items[m], m, 45, path, head)
    proof = merkle.consistency_proof_from(20, 45, lookup)
    assert merkle.verify_consistency(20, merkle.root(items[:20]), 45, head, proof)
