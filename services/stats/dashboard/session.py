"""Browser sessions: a person pastes their API token once; the browser then holds a signed session cookie.

EventSource cannot send an Authorization header, so the browser needs a cookie — and the cookie must not
be the token (a token is a long-lived credential for every service's API). The session names the token
by its SHA-256 digest, which the tokens file already stores and which cannot be used as a token, plus an
expiry, signed with HMAC-SHA256. The principal is looked up from the tokens file on every request, so a
token removed from it (and the dashboard restarted, as every service needs to be) ends its sessions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable

from shared.auth import Principal, TokenEntry, TokenStore, digest

COOKIE = "dashboard_session"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    def __init__(
        self,
        key: bytes,
        entries: list[TokenEntry],
        max_age_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._store = TokenStore(entries)
        self._by_digest = {entry.sha256: entry for entry in entries}
        self.max_age_s = max_age_s
        self._clock = clock

    def authenticate(self, token: str) -> Principal | None:
        return self._store.authenticate(token)

    def issue(self, token: str) -> str | None:
        """The cookie value of a new session for a valid token; None for an unknown one."""
        if self._store.authenticate(token) is None:
            return None
        body = _b64(json.dumps({"d": digest(token), "exp": int(self._clock()) + self.max_age_s}).encode())
        return f"{body}.{self._sign(body)}"

    def principal(self, cookie: str | None) -> Principal | None:
        """Who a session cookie stands for; None when it is missing, forged, expired or its token gone."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            claims = json.loads(_unb64(body))
            token_digest, expires = str(claims["d"]), int(claims["exp"])
        except (binascii.Error, ValueError, KeyError, TypeError):
            return None  # signed by us, so never in practice: a key shared with something else
        if expires <= self._clock():
            return None
        entry = self._by_digest.get(token_digest)
        if entry is None:
            return None
        return Principal(entry.name, entry.role, entry.hospital_id)

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
