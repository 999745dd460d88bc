"""Configuration of the dashboard process, from `DASHBOARD_*` environment variables (and `KAFKA_*`)."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import KafkaSettings, SecretKey


class DashboardSettings(BaseSettings):
    """No database: the dashboard's state is the topics' latest records, held in memory."""

    model_config = SettingsConfigDict(env_prefix="DASHBOARD_", extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = Field(8005, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    # Signs the session cookie (HMAC). Every replica needs the same key, or a browser's session would
    # only work on the replica that made it.
    session_key: SecretKey
    session_hours: float = Field(12.0, gt=0, le=24 * 7)  # a working day; then the token is asked for again
    # The registry's days: which year is "this year", a month of reporting, how overdue a reminder is.
    timezone: str = "Europe/Oslo"
    # A comment line this often keeps idle event streams open through proxies and notices gone browsers.
    heartbeat_s: float = Field(15.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value
