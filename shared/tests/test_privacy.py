"""Pseudonyms, logs and free text: the identity number never leaves intake in clear."""

from __future__ import annotations

import io
import json
import logging

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.events.forms import Form
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


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"form_type": "diagnosis", "stage": "03821570378"}, "stage"),
        ({"form_type": "treatment", "protocol": "EsPhALL for 038215 70378"}, "protocol"),
        ({"form_type": "follow_up", "late_effects": ["hearing loss", "sibling 03821570378"]}, "late_effects"),
    ],
)
def test_free_text_carrying_an_identity_number_is_refused_without_repeating_it(
    form: dict[str, object], field: str
) -> None:
    bases: dict[str, dict[str, object]] = {
        "diagnosis": {
            "tumour_ref": "T-1",
            "sex": "male",
            "diagnosis_date": "2024-01-02",
            "topography": "C71.6",
            "morphology": "9470",
            "behaviour": 3,
            "grade": 4,
            "basis": 7,
        },
        "treatment": {"tumour_ref": "T-1", "modality": "surgery", "start_date": "2024-01-03"},
        "follow_up": {"tumour_ref": "T-1", "last_contact_date": "2025-01-03", "vital_status": "alive"},
    }
    base = bases[str(form["form_type"])]
    adapter: TypeAdapter[object] = TypeAdapter(Form)
    twelve = "12 digits 038215703781"  # not the shape of an identity number
    adapter.validate_python({**base, **form, field: [twelve] if field == "late_effects" else twelve})
    with pytest.raises(ValidationError) as refused:
        adapter.validate_python({**base, **form})
    assert "must not contain an identity number" in str(refused.value)
    assert "70378" not in json.dumps(refused.value.errors(include_input=False, include_url=False), default=str)
