"""Settings from the environment (pydantic-settings), shared by every service.

Each service subclasses `ServiceSettings` with its own env prefix (`INTAKE_`, `VALIDATION_`, ...).
Its database URL is read from `<PREFIX>DATABASE_URL`, falling back to `DATABASE_URL`, so one process per
service can be given a plain `DATABASE_URL` while a shared shell can hold all four. A missing or
malformed value fails at start-up with the variable's name and what is wrong with it.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from shared.topics import TopicSpec

_S = TypeVar("_S", bound=BaseSettings)

REPO_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = REPO_ROOT / "var"

_BOOTSTRAP = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}(,[A-Za-z0-9.\-\[\]:]+:\d{1,5})*$")


def _check_bootstrap(value: str) -> str:
    value = value.replace(" ", "")
    if not _BOOTSTRAP.match(value):
        raise ValueError("expected host:port[,host:port...], e.g. 127.0.0.1:9092")
    return value


def _check_database_url(value: str) -> str:
    # Accept the URLs operators paste and pin them to the async drivers the services use.
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite:///", "sqlite+aiosqlite:///"),
    ):
        if value.startswith(plain):
            value = driver + value[len(plain) :]
    if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        raise ValueError("expected a postgresql+asyncpg:// or sqlite+aiosqlite:/// URL")
    return value


def _check_key(value: SecretStr) -> SecretStr:
    try:
        raw = base64.urlsafe_b64decode(value.get_secret_value().encode() + b"==")
    except (binascii.Error, ValueError) as exc:
        raise ValueError("expected a url-safe base64 key (e.g. `registry secrets new`)") from exc
    if len(raw) < 32:
        raise ValueError(f"key is {len(raw)} bytes; at least 32 are needed")
    return value


BootstrapServers = Annotated[str, AfterValidator(_check_bootstrap)]
DatabaseUrl = Annotated[str, AfterValidator(_check_database_url)]
SecretKey = Annotated[SecretStr, AfterValidator(_check_key)]


def key_bytes(key: SecretStr) -> bytes:
    return base64.urlsafe_b64decode(key.get_secret_value().encode() + b"==")


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: BootstrapServers = "127.0.0.1:9092"
    # zstd: aiokafka compresses lz4 at level 9, 4.8 µs per ~530-byte event against zstd's 0.8, and zstd's
    # batches are a third smaller; consumers decompress either in a fraction of a microsecond.
    compression: Literal["lz4", "zstd", "gzip", "snappy"] | None = "zstd"
    # Topic creation: 1 for a single development broker, 3 and 2 for a real cluster.
    replication_factor: int = Field(1, ge=1)
    min_insync_replicas: int = Field(1, ge=1)
    # Batch consumption: how many records one transaction takes at most and how long to wait for records.
    # A batch is what has arrived, so small when traffic is light; 2,000 (not 500) when a backlog drains
    # cut the CPU per event by a quarter to a third (docs/benchmarks.md); 5,000 gained nothing more.
    max_batch: int = Field(2000, ge=1, le=10_000)
    batch_timeout_ms: int = Field(50, ge=1)
    # Prepended to every topic name: separate environments (or test runs) on one cluster.
    topic_prefix: str = Field("", pattern=r"^[A-Za-z0-9._-]*$")

    def topic(self, spec: TopicSpec) -> str:
        return self.topic_prefix + spec.name


def database_url_field(service: str) -> Any:
    return Field(
        f"sqlite+aiosqlite:///{VAR_DIR / (service + '.db')}",
        validation_alias=AliasChoices(f"{service.upper()}_DATABASE_URL", "DATABASE_URL"),
    )


class ServiceSettings(BaseSettings):
    """What every service process needs; subclasses add their own and set `service_name`."""

    service_name: ClassVar[str]

    database_url: DatabaseUrl
    http_host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    @property
    def consumer_group(self) -> str:
        return self.service_name


class SettingsError(RuntimeError):
    """Start-up configuration is missing or malformed; the message names each variable and the fix."""


def load_settings(cls: type[_S]) -> _S:
    from pydantic import ValidationError

    try:
        return cls()
    except ValidationError as exc:
        prefix = (exc.title == "KafkaSettings" and "KAFKA_") or cls.model_config.get("env_prefix", "")
        lines = []
        for error in exc.errors(include_input=False):
            name = "_".join(str(part) for part in error["loc"]).upper()
            lines.append(f"  {prefix}{name}: {error['msg']}")
        raise SettingsError(f"{cls.__name__}: invalid configuration\n" + "\n".join(lines)) from None
