"""`registry intake ...`: operator commands of the intake service. They read the service's own
configuration (`INTAKE_*` variables), so run them where the service runs. Sealed dead letters of the
hospital inbound topic open with `registry deadletters show --unseal` (INTAKE_VAULT_KEY set)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import delete, func, select

from services.intake.settings import IntakeSettings
from services.intake.storage import OutboxMessage, outbox_backlog
from shared.db import create_engine, session_factory
from shared.events.base import utcnow
from shared.settings import SettingsError, load_settings

app = typer.Typer(help="Commands of the intake service.", no_args_is_help=True)
outbox_app = typer.Typer(help="The outbox: events waiting for Kafka, and those already sent.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")
console = Console()
errors = Console(stderr=True)


def _settings() -> IntakeSettings:
    try:
        return load_settings(IntakeSettings)
    except SettingsError as error:
        errors.print(str(error), highlight=False)
        raise typer.Exit(2) from error


@outbox_app.command("status")
def outbox_status() -> None:
    """Events waiting for Kafka (per topic) and the age of the oldest; exit code 1 if any wait."""

    async def read() -> tuple[int, str, list[tuple[str, int, int]]]:
        engine = create_engine(_settings().database_url)
        try:
            async with session_factory(engine)() as session:
                waiting, oldest = await outbox_backlog(session)
                rows = await session.execute(
                    select(
                        OutboxMessage.topic,
                        func.count().filter(OutboxMessage.sent_at.is_(None)),
                        func.count().filter(OutboxMessage.sent_at.is_not(None)),
                    ).group_by(OutboxMessage.topic)
                )
                per_topic = [(topic, int(unsent), int(sent)) for topic, unsent, sent in rows]
        finally:
            await engine.dispose()
        age = f"{(utcnow() - oldest).total_seconds():.1f} s" if oldest else "-"
        return waiting, age, sorted(per_topic)

    waiting, age, per_topic = asyncio.run(read())
    table = Table("topic", "waiting", "sent (kept)")
    for topic, unsent, sent in per_topic:
        table.add_row(topic, str(unsent), str(sent))
    console.print(table)
    console.print(f"waiting: [bold]{waiting}[/], oldest waiting for {age}")
    if waiting:
        raise typer.Exit(1)


@outbox_app.command("purge")
def outbox_purge(
    older_than_days: Annotated[int, typer.Option(min=1, help="Delete sent events older than this")] = 30,
) -> None:
    """Delete events Kafka acknowledged long ago (they stay on the topics); unsent ones are never touched."""

    async def purge() -> int:
        engine = create_engine(_settings().database_url)
        try:
            async with session_factory(engine).begin() as session:
                cutoff = utcnow() - timedelta(days=older_than_days)
                result = await session.execute(
                    delete(OutboxMessage).where(OutboxMessage.sent_at.is_not(None), OutboxMessage.sent_at < cutoff)
                )
        finally:
            await engine.dispose()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    console.print(f"deleted {asyncio.run(purge())} sent events older than {older_than_days} days")
