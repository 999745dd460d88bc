from __future__ import annotations

import pytest

from services.export.settings import ExportSettings
from shared.settings import SettingsError, load_settings

KEY = "a" * 43  # 32 bytes of url-safe base64


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EXPORT_PSEUDONYM_KEY", "EXPORT_SINK", "EXPORT_SIGNING_KEY", "DATABASE_URL", "EXPORT_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_the_pseudonym_key_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="EXPORT_PSEUDONYM_KEY: Field required"):
        load_settings(ExportSettings)


def test_a_short_pseudonym_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORT_PSEUDONYM_KEY", "c2hvcnQ")
    with pytest.raises(SettingsError, match=r"EXPORT_PSEUDONYM_KEY: .*at least 32"):
        load_settings(ExportSettings)


def test_the_file_sink_needs_a_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORT_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("EXPORT_SINK", "file")
    with pytest.raises(SettingsError, match=r"EXPORT_SIGNING_KEY: .*required when EXPORT_SINK=file"):
        load_settings(ExportSettings)
    monkeypatch.setenv("EXPORT_SIGNING_KEY", KEY)
    assert load_settings(ExportSettings).sink == "file"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORT_PSEUDONYM_KEY", KEY)
    settings = load_settings(ExportSettings)
    assert (settings.http_port, settings.sink, settings.batch_interval_s) == (8004, "sql", None)
    assert settings.database_url.endswith("/var/export.db")
    assert settings.sink_database_url.endswith("/var/nordic.db")
    assert settings.sink_dir.name == "nordic-drop"
    assert settings.lease_owner.endswith(":8004")
