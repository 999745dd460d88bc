"""Intake's app on SQLite, built as in production, for tests that need no broker: migrations run, the
outbox relay and the consumers are not started, so outbox rows stay for the test to inspect."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from services.intake.app import MIGRATIONS, create_app
from services.intake.application import Intake
from services.intake.settings import IntakeSettings
from services.intake.storage import OutboxMessage
from services.intake.tests.factories import new_key
from shared.auth import Role, TokenEntry, TokenStore, digest
from shared.db.migrations import upgrade
from shared.events import Event
from shared.service import Service
from shared.settings import KafkaSettings

TOKENS = {
    "ous-token": TokenEntry(name="ous-portal", role=Role.HOSPITAL, hospital_id="ous", sha256=digest("ous-token")),
    "unn-token": TokenEntry(name="unn-portal", role=Role.HOSPITAL, hospital_id="unn", sha256=digest("unn-token")),
    "staff-token": TokenEntry(name="coder.anna", role=Role.STAFF, sha256=digest("staff-token")),
}
OUS = {"Authorization": "Bearer ous-token"}
UNN = {"Authorization": "Bearer unn-token"}
STAFF = {"Authorization": "Bearer staff-token"}


def intake_settings(database_url: str, kafka: KafkaSettings | None = None, **overrides: Any) -> IntakeSettings:
    # Nothing listens on port 9: tests that need no broker prove it.
    return IntakeSettings(
        database_url=database_url,
        pseudonym_key=new_key(),
        vault_key=new_key(),
        kafka=kafka or KafkaSettings(bootstrap_servers="127.0.0.1:9", topic_prefix=f"u{uuid.uuid4().hex[:8]}."),
        **overrides,
    )


def build_app(settings: IntakeSettings) -> FastAPI:
    app = create_app(settings)
    app.state.tokens = TokenStore(list(TOKENS.values()))
    return app


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    settings: IntakeSettings

    @property
    def service(self) -> Service:
        service: Service = self.app.state.service
        return service

    @property
    def intake(self) -> Intake:
        intake: Intake = self.app.state.intake
        return intake

    async def outbox(self, topic: str | None = None) -> list[OutboxMessage]:
        async with self.service.sessions() as session:
            query = select(OutboxMessage).order_by(OutboxMessage.seq)
            if topic is not None:
                query = query.where(OutboxMessage.topic == topic)
            return list(await session.scalars(query))

    async def outbox_events(self, topic: str, model: type[Event]) -> list[Event]:
        return [model.from_json(row.payload) for row in await self.outbox(topic)]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    settings = intake_settings(f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}")
    app = build_app(settings)
    service: Service = app.state.service
    await upgrade(service.engine, MIGRATIONS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        yield Harness(app, client, settings)
    await service.engine.dispose()
