"""Settings come from the environment and fail at start-up with the variable's name and the fix."""

from __future__ import annotations

import base64

import pytest
from pydantic_settings import SettingsConfigDict

from shared.settings import (
    DatabaseUrl,
    KafkaSettings,
    SecretKey,
    ServiceSettings,
    SettingsError,
    database_url_field,
    key_bytes,
    load_settings,
)


class DemoSettings(ServiceSettings):
    service_name = "demo"
    model_config = SettingsConfigDict(env_prefix="DEMO_")
    database_url: DatabaseUrl = database_url_field("demo")
    signing_key: SecretKey


KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()


def test_service_database_url_wins_over_the_generic_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_SIGNING_KEY", KEY)
    monkeypatch.setenv("DATABASE_URL", "postgresql://registry@db/shared")
    assert load_settings(DemoSettings).database_url == "postgresql+asyncpg://registry@db/shared"
    monkeypatch.setenv("DEMO_DATABASE_URL", "sqlite:///var/demo.db")
    assert load_settings(DemoSettings).database_url == "sqlite+aiosqlite:///var/demo.db"


def test_missing_and_malformed_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_DATABASE_URL", "mysql://db/x")
    with pytest.raises(SettingsError) as excinfo:
        load_settings(DemoSettings)
    message = str(excinfo.value)
    assert "DEMO_DATABASE_URL" in message and "postgresql+asyncpg://" in message
    assert "DEMO_SIGNING_KEY: Field required" in message


def test_short_keys_are_refused_without_echoing_them(monkeypatch: pytest.MonkeyPatch) -> None:
    short = base64.urlsafe_b64encode(b"0123456789").decode()
    monkeypatch.setenv("DEMO_SIGNING_KEY", short)
    with pytest.raises(SettingsError, match="10 bytes; at least 32") as excinfo:
        load_settings(DemoSettings)
    assert short not in str(excinfo.value)


def test_kafka_settings_name_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost")
    with pytest.raises(SettingsError, match=r"KAFKA_BOOTSTRAP_SERVERS: .*host:port"):
        load_settings(KafkaSettings)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "a:9092, b:9092")
    assert load_settings(KafkaSettings).bootstrap_servers == "a:9092,b:9092"


def test_key_bytes_decodes_the_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_SIGNING_KEY", KEY)
    assert key_bytes(load_settings(DemoSettings).signing_key) == bytes(range(32))
