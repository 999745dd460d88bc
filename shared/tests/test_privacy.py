"""Pseudonyms and logs: the identity number never leaves intake in clear."""

from __future__ import annotations

import io
import json
import logging

import pytest

from shared.observability.logging import configure_logging, redact
from shared.pseudonym import Pseudonymiser

KEY = bytes(range(32))


def test_pseudonyms_are_stable_keyed_and_purpose_bound() -> None:
    registry = Pseudonymiser(KEY, "registry")
    assert registry("01010150123") == registry("01010150123")
    assert registry("01010150123") != registry("01010150124")
    assert Pseudonymiser(KEY, "nopho-care")("01010150123") != registry("01010150123")
    assert Pseudonymiser(bytes(range(1, 33)), "registry")("01010150123") != registry("01010150123")
    assert len(registry("x")) == 32 and registry("x").isalnum() and registry("x").islower()


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Pseudonymiser(b"short", "registry")


@pytest.mark.parametrize("text", ["fnr 01010150123 rejected", "fnr 010101 50123", "id=41010150123;"])
def test_identity_numbers_are_redacted(text: str) -> None:
    assert "[redacted-id]" in redact(text)
    assert "50123" not in redact(text)


def test_longer_numbers_and_dates_are_left_alone() -> None:
    assert redact("offset 123456789012 on 2024-01-01") == "offset 123456789012 on 2024-01-01"


def test_json_logs_redact_messages_and_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # restored after the test
    monkeypatch.setattr(root, "level", root.level)
    configure_logging("intake", "INFO", json=True)
    logging.getLogger("intake.api").warning("refused %s for %s", "01010150123", "ous")
    record = json.loads(stream.getvalue().splitlines()[-1])
    assert record["message"] == "refused [redacted-id] for ous"
    assert (record["service"], record["level"]) == ("intake", "WARNING")
