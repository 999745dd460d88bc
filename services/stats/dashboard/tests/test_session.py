"""Sessions: a signed cookie naming the token by its digest, never the token; forged, expired or revoked
sessions are nobody."""

from __future__ import annotations

import base64
import json
import secrets

from services.stats.dashboard.session import Sessions
from services.stats.dashboard.tests.factories import TOKENS
from shared.auth import Role

KEY = secrets.token_bytes(32)


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


def sessions(clock: Clock | None = None, key: bytes = KEY, entries: list | None = None) -> Sessions:
    return Sessions(key, list(TOKENS.values()) if entries is None else entries, 3600, clock or Clock())


def test_a_valid_token_gets_a_session_that_names_its_principal() -> None:
    cookie = sessions().issue("ous-token")
    assert cookie is not None
    principal = sessions().principal(cookie)
    assert principal is not None
    assert (principal.name, principal.role, principal.hospital_id) == ("ous-portal", Role.HOSPITAL, "ous")


def test_the_cookie_does_not_carry_the_token() -> None:
    cookie = sessions().issue("staff-token")
    assert cookie is not None
    body = base64.urlsafe_b64decode(cookie.split(".")[0] + "==")
    assert b"staff-token" not in body and "staff-token" not in cookie
    assert json.loads(body)["d"] == TOKENS["staff-token"].sha256


def test_an_unknown_token_gets_no_session() -> None:
    assert sessions().issue("guess") is None
    assert sessions().issue("") is None


def test_a_forged_or_mangled_cookie_is_nobody() -> None:
    cookie = sessions().issue("ous-token")
    assert cookie is not None
    body, signature = cookie.split(".")
    staff_body = (
        base64.urlsafe_b64encode(json.dumps({"d": TOKENS["staff-token"].sha256, "exp": 2_000_000_000}).encode())
        .decode()
        .rstrip("=")
    )
    for forged in (f"{staff_body}.{signature}", body, f"{body}.", f"{body}.{signature}.x", "", None):
        assert sessions().principal(forged) is None
    assert sessions(key=secrets.token_bytes(32)).principal(cookie) is None  # another key


def test_a_session_expires() -> None:
    clock = Clock()
    cookie = sessions(clock).issue("ous-token")
    clock.now += 3599
    assert sessions(clock).principal(cookie) is not None
    clock.now += 1
    assert sessions(clock).principal(cookie) is None


def test_a_session_ends_with_its_token() -> None:
    cookie = sessions().issue("ous-token")
    others = [entry for token, entry in TOKENS.items() if token != "ous-token"]
    assert sessions(entries=others).principal(cookie) is None
