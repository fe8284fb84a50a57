"""The audit's Ed25519 signing key, kept in a file outside the database, and signed tree heads.

Why outside: whoever can rewrite the event store must not also be able to re-sign a rewritten
history. The key is generated on first use (mode 0600) and never logged; tree heads carry the key id
(the first 16 hex digits of SHA-256 of the raw public key) so verifiers know which key signed.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

from infra.event_codec import canonical_json

log = logging.getLogger(__name__)


class SigningKeyError(RuntimeError):
    """The key file exists but cannot be used: unreadable, not a key, or not Ed25519."""


@dataclass(frozen=True)
class TreeHeadSigner:
    key: ECC.EccKey

    @property
    def public_key_raw(self) -> bytes:
        raw: bytes = self.key.public_key().export_key(format="raw")
        return raw

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.public_key_raw).hexdigest()[:16]

    def sign(self, tree_size: int, root_hash: bytes, timestamp: str) -> dict[str, Any]:
        """A signed tree head: what was signed (canonical JSON) plus the signature, base64."""
        head: dict[str, Any] = {
            "key_id": self.key_id,
            "root_hash": root_hash.hex(),
            "timestamp": timestamp,
            "tree_size": tree_size,
        }
        signature = eddsa.new(self.key, "rfc8032").sign(canonical_json(head))
        return {**head, "signature": base64.b64encode(signature).decode("ascii")}


def verify_tree_head(signed: dict[str, Any], public_key_raw: bytes) -> bool:
    """Checks a signed tree head against a raw Ed25519 public key; False for any mismatch."""
    head = {k: v for k, v in signed.items() if k != "signature"}
    try:
        signature = base64.b64decode(signed["signature"], validate=True)
        verifier = eddsa.new(ECC.import_key(_raw_to_pem(public_key_raw)), "rfc8032")
        verifier.verify(canonical_json(head), signature)
    except (KeyError, ValueError, TypeError):
        return False
    return True


def _raw_to_pem(public_key_raw: bytes) -> str:
    """SubjectPublicKeyInfo for a raw Ed25519 key (RFC 8410), so pycryptodome can import it."""
    prefix = bytes.fromhex("302a300506032b6570032100")
    body = base64.b64encode(prefix + public_key_raw).decode("ascii")
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def load_or_create_signer(path: Path) -> TreeHeadSigner:
    """The key at `path`, generated there (mode 0600) the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ECC.generate(curve="ed25519")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key.export_key(format="PEM"))
        signer = TreeHeadSigner(key)
        log.warning(
            "generated a new audit signing key", extra={"path": str(path), "key_id": signer.key_id}
        )
        return signer
    try:
        key = ECC.import_key(path.read_text())
    except (OSError, ValueError) as error:
        raise SigningKeyError(f"audit signing key {path} cannot be used: {error}") from None
    if key.curve != "Ed25519" or not key.has_private():
        raise SigningKeyError(f"audit signing key {path} is not an Ed25519 private key")
    return TreeHeadSigner(key)
