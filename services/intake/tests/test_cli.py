"""`registry intake ...` against the database of a running intake (SQLite here)."""

from __future__ import annotations

import asyncio
import base64
import os
from datetime import timedelta

import pytest
from sqlalchemy import update
from typer.testing import CliRunner, Result

from services.intake.cli import app
from services.intake.crypto import Purpose, Sealer
from services.intake.storage import OutboxMessage
from services.intake.tests.conftest import OUS, Harness
from services.intake.tests.factories import CHILD, encode, submission
from shared.events import DeadLetter
from shared.events.base import utcnow
from shared.settings import key_bytes


@pytest.fixture
def cli(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("INTAKE_DATABASE_URL", harness.settings.database_url)
    monkeypatch.setenv("INTAKE_PSEUDONYM_KEY", harness.settings.pseudonym_key.get_secret_value())
    monkeypatch.setenv("INTAKE_VAULT_KEY", harness.settings.vault_key.get_secret_value())
    return CliRunner()


async def invoke(cli: CliRunner, *args: str, stdin: bytes | None = None) -> Result:
    # In a thread of its own: the commands run their own event loop.
    return await asyncio.to_thread(lambda: cli.invoke(app, list(args), input=stdin, env=dict(os.environ)))


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


async def test_a_sealed_dead_letter_opens_with_the_vault_key(harness: Harness, cli: CliRunner) -> None:
    original = encode(submission())
    sealer = Sealer(key_bytes(harness.settings.vault_key), Purpose.DEAD_LETTERS)
    letter = DeadLetter(
        producer="intake",
        source_topic="hospital.inbound.submissions",
        partition=0,
        offset=7,
        consumer_group="intake-inbound",
        key_b64=None,
        value_b64=base64.b64encode(sealer.seal(original)).decode(),
        value_encoding="fernet",
        error_type="UnanswerableMessage",
        error="the hospital-id header, the key and hospital_id disagree",
        attempts=1,
        failed_at=utcnow(),
    )
    assert CHILD.encode() not in letter.to_json()
    opened = await invoke(cli, "open-dead-letter", stdin=letter.to_json())
    assert opened.exit_code == 0 and opened.stdout_bytes == original

    other = await invoke(cli, "open-dead-letter", stdin=b"{}")
    assert other.exit_code == 2
