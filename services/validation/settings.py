"""Configuration of the validation service, from the environment (prefix `VALIDATION_`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import DatabaseUrl, ServiceSettings, database_url_field


class ValidationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VALIDATION_", extra="ignore")

    service_name: ClassVar[str] = "validation"

    database_url: DatabaseUrl = database_url_field("validation")
    http_port: int = Field(8002, ge=1, le=65535)
