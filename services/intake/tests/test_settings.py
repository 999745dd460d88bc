"""Intake refuses to start without its two secrets, and says which variable is wrong."""

from __future__ import annotations

import base64

import pytest

from services.intake.settings import IntakeSettings
from services.intake.tests.factories import new_key
from shared.settings import SettingsError, load_settings


def test_missing_keys_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTAKE_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("INTAKE_VAULT_KEY", raising=False)
    with pytest.raises(SettingsError) as caught:
        load_settings(IntakeSettings)
    assert "INTAKE_PSEUDONYM_KEY: Field required" in str(caught.value)
    assert "INTAKE_VAULT_KEY: Field required" in str(caught.value)


def test_short_keys_are_refused_without_showing_them(monkeypatch: pytest.MonkeyPatch) -> None:
    short = base64.urlsafe_b64encode(b"0123456789").decode()
    monkeypatch.setenv("INTAKE_PSEUDONYM_KEY", new_key())
    monkeypatch.setenv("INTAKE_VAULT_KEY", short)
    with pytest.raises(SettingsError) as caught:
        load_settings(IntakeSettings)
    assert "INTAKE_VAULT_KEY" in str(caught.value) and "at least 32" in str(caught.value)
    assert short not in str(caught.value)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_PSEUDONYM_KEY", new_key())
    monkeypatch.setenv("INTAKE_VAULT_KEY", new_key())
    monkeypatch.delenv("INTAKE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = load_settings(IntakeSettings)
    assert settings.http_port == 8001 and settings.max_body_bytes == 256 * 1024
    assert settings.database_url.startswith("sqlite+aiosqlite:///") and settings.database_url.endswith("intake.db")
    assert settings.consumer_group == "intake"
