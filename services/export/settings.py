"""Export's configuration, from `EXPORT_*` environment variables (database: `EXPORT_DATABASE_URL`)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import VAR_DIR, DatabaseUrl, SecretKey, ServiceSettings, database_url_field

DEFAULT_HTTP_PORT = 8004


class ExportSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EXPORT_", extra="ignore")
    service_name: ClassVar[str] = "export"

    database_url: DatabaseUrl = database_url_field("export")
    http_port: int = Field(DEFAULT_HTTP_PORT, ge=1, le=65535)

    # Key of the export-only pseudonyms (child, tumour, record ids): only export holds it, so the
    # Nordic side can link a child's records but never link back to the registry.
    pseudonym_key: SecretKey

    # Where transfers go: a SQL database standing for the Nordic one, or a directory of signed batches.
    sink: Literal["sql", "file"] = "sql"
    sink_database_url: DatabaseUrl = f"sqlite+aiosqlite:///{VAR_DIR / 'nordic.db'}"
    sink_dir: Path = VAR_DIR / "nordic-drop"
    # Seed of the Ed25519 key that signs file-drop manifests (`registry export public-key` prints the
    # public half for the Nordic side). Required for the file sink.
    signing_key: SecretKey | None = Field(None, validate_default=True)

    # Unset: deliver continuously, as soon as a consumed batch has queued transfers. Set: deliver in
    # batches every so many seconds (the ledger still records everything as it is consumed).
    batch_interval_s: float | None = Field(None, gt=0)
    # In continuous mode, how often to look for work nobody announced (retries, another instance's).
    poll_interval_s: float = Field(5.0, gt=0)
    # Members of the consumer group in this process, each applying its own partitions' batches. A child's
    # reports and reservations share a partition, so they hold disjoint children; the delivery worker is
    # kept off a child's rows by row locks (PostgreSQL) or takes turns with them (SQLite).
    consumers: int = Field(2, ge=1, le=8)
    delivery_batch: int = Field(500, ge=1, le=10_000)
    # Sink errors that are not outages (the sink refused the data) before a transfer is marked failed.
    max_failures: int = Field(3, ge=1)
    # One instance delivers at a time; a lease held this long is taken over when its holder vanished.
    lease_s: float = Field(60.0, gt=0)
    # Names this instance as the lease holder; a restarted instance with the same id resumes at once.
    instance_id: str = Field(default_factory=lambda: socket.gethostname(), min_length=1, max_length=128)

    @field_validator("signing_key")
    @classmethod
    def _signing_key_for_file_sink(cls, value: object, info: ValidationInfo) -> object:
        if value is None and info.data.get("sink") == "file":
            raise ValueError("required when EXPORT_SINK=file (a url-safe base64 key of at least 32 bytes)")
        return value

    @property
    def lease_owner(self) -> str:
        # Two instances on one host differ by port; a restart of the same instance keeps its id.
        return f"{self.instance_id}:{self.http_port}"


class ExportDatabaseSettings(BaseSettings):
    """Export's database alone: what `registry export status` and `retry` need, without the keys."""

    model_config = SettingsConfigDict(env_prefix="EXPORT_", extra="ignore")

    database_url: DatabaseUrl = database_url_field("export")
