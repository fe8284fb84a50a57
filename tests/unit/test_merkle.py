"""RFC 6962 hashing and proofs, checked against published vectors and an independent verifier.

The verifier below is written here from RFC 6962 §2.1.1–2.1.2 (recursive definitions), not from
projections/merkle.py's iterative RFC 9162 algorithms, so the two check each other.
"""

from __future__ import annotations

import hashlib

import pytest

from projections import merkle

#: The certificate-transparency test inputs and the tree heads of their first n leaves.
CT_INPUTS = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def split(n: int) -> int:
    k = 1
    while 2 * k < n:
        k *= 2
    return k


def root_from_path(leaf: bytes, m: int, n: int, path: list[bytes]) -> bytes:
    """Rebuilds MTH(D[n]) from leaf m and PATH(m, D[n]) by the RFC's recursion."""
    if n == 1:
        assert path == []
        return leaf
    k, sibling = split(n), path[-1]
    if m < k:
        return h(b"\x01" + root_from_path(leaf, m, k, path[:-1]) + sibling)
    return h(b"\x01" + sibling + root_from_path(leaf, m - k, n - k, path[:-1]))


def roots_from_consistency(
    m: int, n: int, proof: list[bytes], complete: bool, old_root: bytes
) -> tuple[bytes, bytes]:
    """(MTH(D[m]), MTH(D[n])) rebuilt from SUBPROOF(m, D[n], complete), by the RFC's recursion."""
    if m == n:
        if complete:
            assert proof == []
            return old_root, old_root
        assert len(proof) == 1
        return proof[0], proof[0]
    k, sibling, rest = split(n), proof[-1], proof[:-1]
    if m <= k:
        old, new = roots_from_consistency(m, k, rest, complete, old_root)
        return old, h(b"\x01" + new + sibling)
    old, new = roots_from_consistency(m - k, n - k, rest, False, old_root)
    return h(b"\x01" + sibling + old), h(b"\x01" + sibling + new)


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"event {i}".encode()) for i in range(n)]


def test_tree_heads_match_the_certificate_transparency_vectors() -> None:
    hashed = [merkle.leaf_hash(data) for data in CT_INPUTS]
    assert [merkle.root(hashed[:n]).hex() for n in range(1, 9)] == CT_ROOTS
    assert merkle.root([]) == h(b"")


def test_leaves_and_nodes_are_domain_separated() -> None:
    left, right = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.leaf_hash(b"a") == h(b"\x00a")
    assert merkle.node_hash(left, right) == h(b"\x01" + left + right)
    assert merkle.leaf_hash(left + right) != merkle.node_hash(left, right)


@pytest.mark.parametrize("size", range(1, 21))
def test_every_inclusion_proof_verifies_both_ways(size: int) -> None:
    tree = leaves(size)
    head = merkle.root(tree)
    for index in range(size):
        proof = merkle.inclusion_proof(index, tree)
        assert root_from_path(tree[index], index, size, proof) == head
        assert merkle.verify_inclusion(tree[index], index, size, proof, head)


def test_a_wrong_leaf_index_or_path_does_not_verify() -> None:
    tree = leaves(13)
    head = merkle.root(tree)
    proof = merkle.inclusion_proof(5, tree)
    assert not merkle.verify_inclusion(tree[6], 5, 13, proof, head)
    assert not merkle.verify_inclusion(tree[5], 4, 13, proof, head)
    assert not merkle.verify_inclusion(tree[5], 5, 13, proof[:-1], head)
    assert not merkle.verify_inclusion(tree[5], 5, 6, proof, head)  # a tree of another shape
    assert not merkle.verify_inclusion(tree[5], 13, 13, proof, head)
    with pytest.raises(IndexError):
        merkle.inclusion_proof(13, tree)


@pytest.mark.parametrize("new_size", range(2, 21))
def test_every_consistency_proof_verifies_both_ways(new_size: int) -> None:
    tree = leaves(new_size)
    new_head = merkle.root(tree)
    for old_size in range(1, new_size):
        old_head = merkle.root(tree[:old_size])
        proof = merkle.consistency_proof(old_size, tree)
        rebuilt = roots_from_consistency(old_size, new_size, proof, True, old_head)
        assert rebuilt == (old_head, new_head)
        assert merkle.verify_consistency(old_size, old_head, new_size, new_head, proof)


def test_a_rewritten_history_is_not_consistent() -> None:
    tree = leaves(11)
    forged = [*tree[:3], merkle.leaf_hash(b"forged"), *tree[4:]]
    old_head = merkle.root(tree[:6])
    proof = merkle.consistency_proof(6, forged)
    assert not merkle.verify_consistency(6, old_head, 11, merkle.root(forged), proof)
    assert not merkle.verify_consistency(6, old_head, 11, merkle.root(tree), proof[:-1])
    assert merkle.verify_consistency(11, merkle.root(tree), 11, merkle.root(tree), [])
    with pytest.raises(ValueError, match="no consistency proof"):
        merkle.consistency_proof(0, tree)


def test_the_case_chain_depends_on_every_earlier_entry() -> None:
    first = merkle.chain_hash(b"\x00" * 32, b'{"v":1}')
    second = merkle.chain_hash(first, b'{"v":2}')
    assert first == h(b"\x00" * 32 + b'{"v":1}')
    assert merkle.chain_hash(merkle.chain_hash(b"\x00" * 32, b'{"v":9}'), b'{"v":2}') != second
