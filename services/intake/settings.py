"""Intake's configuration, from `INTAKE_*` environment variables (database: `INTAKE_DATABASE_URL`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import DatabaseUrl, SecretKey, ServiceSettings, database_url_field


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore")
    service_name: ClassVar[str] = "intake"

    database_url: DatabaseUrl = database_url_field("intake")
    http_port: int = Field(8001, ge=1, le=65535)

    # HMAC key of the registry pseudonym: every service sees the child only by it.
    pseudonym_key: SecretKey
    # Seals identity numbers in the vault, draft contents and the inbound topic's dead letters.
    vault_key: SecretKey

    # Synthetic test numbers (month + 65/80) are welcome in test environments; production may refuse them.
    accept_synthetic_ids: bool = True
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    # A form made more than this far in the future is refused: the hospital's clock or the field is wrong.
    clock_skew_s: float = Field(300.0, ge=0)
    receipts_page_max: int = Field(500, ge=1, le=10_000)

    # Records per transaction for intake's consumers (the inbound topic, validation's decisions), at most
    # KAFKA_MAX_BATCH: a registration holds ORM rows of the tumour's whole history, far more than another
    # service's event, and at 2,000 a batch intake outgrew 200 MiB; at 500 the burst was as fast.
    consumer_batch: int = Field(500, ge=1, le=10_000)
    outbox_batch: int = Field(500, ge=1, le=10_000)
    outbox_poll_s: float = Field(0.5, gt=0)
    outbox_max_backoff_s: float = Field(10.0, gt=0)
