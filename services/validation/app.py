"""The validation service process: consumer of received submissions, producer of validated/rejected events."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.validation import api
from services.validation.application import Validation
from services.validation.domain import reference
from services.validation.handlers import subscribe
from services.validation.settings import ValidationSettings
from shared.service import Service
from shared.topics import SUBMISSIONS_RECEIVED, SUBMISSIONS_REJECTED, SUBMISSIONS_VALIDATED

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_app(settings: ValidationSettings) -> FastAPI:
    tables = reference()  # loaded and compiled here, once: a broken table stops the start, not a batch
    service = Service("validation", settings, MIGRATIONS)
    validation = Validation(
        service.sessions,
        service.broker,
        tables,
        source_topic=service.topic(SUBMISSIONS_RECEIVED),
        validated_topic=service.topic(SUBMISSIONS_VALIDATED),
        rejected_topic=service.topic(SUBMISSIONS_REJECTED),
    )
    subscribe(service, validation)
    return service.http_app(
        title="Registry validation",
        description="ICCC-3 coding and the registry's edit checks of every received submission.",
        routers=[api.router(tables)],
    )
