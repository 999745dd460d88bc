"""Keyed pseudonyms: HMAC-SHA256 under a secret, so the same child always gets the same pseudonym and
nobody without the key can compute it from an identity number (11 digits are easy to enumerate).

Intake derives the registry pseudonym from the identity number; export derives its own, export-only
pseudonym from the registry pseudonym with a key only export holds, so the Nordic side can link a
child's records across transfers but cannot link back to the registry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


class Pseudonymiser:
    def __init__(self, key: bytes, purpose: str) -> None:
        if len(key) < 32:
            raise ValueError("a pseudonymisation key needs at least 32 bytes")
        # Binding the purpose into the MAC keeps two uses of one key from yielding the same values.
        self._mac = hmac.new(key, purpose.encode() + b"\x00", hashlib.sha256)

    def __call__(self, value: str) -> str:
        mac = self._mac.copy()
        mac.update(value.encode())
        # 160 bits of base32 without padding: 32 lowercase characters, safe in keys, URLs and logs.
        return base64.b32encode(mac.digest()[:20]).decode().lower()
