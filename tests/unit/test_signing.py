"""The audit signing key: generated once outside the database, signed tree heads verify, forgeries
do not."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from infra.signing import SigningKeyError, load_or_create_signer, verify_tree_head

ROOT = bytes(range(32))


def test_the_key_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit.pem"
    first = load_or_create_signer(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_signer(path)
    assert again.key_id == first.key_id
    assert again.public_key_raw == first.public_key_raw


def test_a_signed_tree_head_verifies_and_a_forged_one_does_not(tmp_path: Path) -> None:
    signer = load_or_create_signer(tmp_path / "audit.pem")
    head = signer.sign(42, ROOT, "2026-11-23T08:00:00.000000Z")
    assert verify_tree_head(head, signer.public_key_raw)
    for field, forged in (("tree_size", 41), ("root_hash", "00" * 32), ("timestamp", "2026")):
        assert not verify_tree_head({**head, field: forged}, signer.public_key_raw)
    other = load_or_create_signer(tmp_path / "other.pem")
    assert not verify_tree_head(head, other.public_key_raw)
    assert not verify_tree_head({**head, "signature": "not base64!"}, signer.public_key_raw)


def test_an_unusable_key_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "audit.pem"
    path.write_text("not a key")
    with pytest.raises(SigningKeyError, match="cannot be used"):
        load_or_create_signer(path)
