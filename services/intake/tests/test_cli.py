"""`registry intake ...` against the database of a running intake (SQLite here)."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import pytest
from sqlalchemy import update
from typer.testing import CliRunner, Result

from services.intake.cli import app
from services.intake.storage import OutboxMessage
from services.intake.tests.conftest import OUS, Harness
from services.intake.tests.factories import encode, submission
from shared.events.base import utcnow


@pytest.fixture
def cli(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("INTAKE_DATABASE_URL", harness.settings.database_url)
    monkeypatch.setenv("INTAKE_PSEUDONYM_KEY", harness.settings.pseudonym_key.get_secret_value())
    monkeypatch.setenv("INTAKE_VAULT_KEY", harness.settings.vault_key.get_secret_value())
    return CliRunner()


async def invoke(cli: CliRunner, *args: str) -> Result:
    # In a thread of its own: the commands run their own event loop.
    return await asyncio.to_thread(lambda: cli.invoke(app, list(args), env=dict(os.environ)))


async def test_outbox_status_shows_what_waits_and_purge_deletes_only_old_sent_events(
    harness: Harness, cli: CliRunner
) -> None:
    await harness.client.post("/v1/submissions", content=encode(submission()), headers=OUS)
    waiting = await invoke(cli, "outbox", "status")
    assert waiting.exit_code == 1, waiting.output
    assert "waiting: 2" in waiting.output

    async with harness.service.sessions.begin() as session:
        await session.execute(update(OutboxMessage).values(sent_at=utcnow() - timedelta(days=40)))
    await harness.client.post("/v1/submissions", content=encode(submission()), headers=OUS)
    purged = await invoke(cli, "outbox", "purge", "--older-than-days", "30")
    assert "deleted 2 sent events" in purged.output
    assert len(await harness.outbox()) == 2
