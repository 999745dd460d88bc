"""Sealing what holds identity numbers at rest: the vault, draft contents, inbound dead letters.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) under keys derived from `INTAKE_VAULT_KEY`
with HKDF, one per purpose, so a key recovered from one use opens nothing else. Dead letters use Fernet
because their contract names it (`value_encoding: "fernet"`).
"""

from __future__ import annotations

import base64
from enum import StrEnum

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.pseudonym import Pseudonymiser


class Purpose(StrEnum):
    VAULT = "intake-vault"
    DRAFTS = "intake-drafts"
    DEAD_LETTERS = "intake-dead-letters"


class Sealer:
    def __init__(self, key: bytes, purpose: Purpose) -> None:
        if len(key) < 32:
            raise ValueError("a vault key needs at least 32 bytes")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.value.encode()).derive(key)
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, plain: bytes) -> bytes:
        return self._fernet.encrypt(plain)

    def open(self, sealed: bytes) -> bytes:
        """Raise `InvalidToken` when `sealed` was not made with this key and purpose, or was altered."""
        return self._fernet.decrypt(sealed)


def registry_pseudonymiser(key: bytes) -> Pseudonymiser:
    """The child's registry pseudonym from the identity number: the one key every event is keyed by."""
    return Pseudonymiser(key, "registry-child")


__all__ = ["InvalidToken", "Purpose", "Sealer", "registry_pseudonymiser"]
