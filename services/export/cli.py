"""`registry export ...`: operator and staff commands of the export service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Annotated, TypeVar

import typer
from pydantic_settings import BaseSettings
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.export import application
from services.export.delivery import DeliveryWorker
from services.export.settings import ExportDatabaseSettings, ExportSettings
from services.export.sinks import open_sink
from services.export.sinks.filedrop import key_id, public_key_pem, signing_key
from services.export.storage import MIGRATIONS, Counts, Failure, Transactions
from shared.db import create_engine, session_factory
from shared.db.migrations import upgrade
from shared.settings import SettingsError, key_bytes, load_settings

app = typer.Typer(help="Commands of the export service.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")
S = TypeVar("S", bound=BaseSettings)


def _settings(cls: type[S]) -> S:
    try:
        return load_settings(cls)
    except SettingsError as error:
        errors.print(str(error), highlight=False)
        raise typer.Exit(2) from None


def _with_database(url: str, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(url)
        try:
            await upgrade(engine, MIGRATIONS)
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False) -> None:
    """Transfer operations by outcome: pending, sent, retracted, failed (and cancelled, reserved, held)."""
    settings = _settings(ExportDatabaseSettings)

    async def read(sessions: async_sessionmaker[AsyncSession]) -> tuple[Counts, list[Failure]]:
        return await application.status(sessions), await application.failures(sessions)

    counts, failed = _with_database(settings.database_url, read)
    if as_json:
        console.print_json(json.dumps({**asdict(counts), "failures": [asdict(f) for f in failed]}))
        return
    table = Table("", "count", title="NOPHO-Care transfers")
    table.add_row("pending", str(counts.pending))
    table.add_row("sent", str(counts.sent))
    table.add_row("retracted", str(counts.retracted))
    table.add_row("failed", str(counts.failed), style="bold red" if counts.failed else None)
    table.add_row("cancelled before sending", str(counts.cancelled), style="dim")
    table.add_row("reserved children", str(counts.reserved_children), style="dim")
    table.add_row("reports held for their diagnosis", str(counts.held_reports), style="dim")
    console.print(table)
    if failed:
        failures = Table("ledger id", "record id", "operation", "refusals", "last error", title="Failed operations")
        for f in failed:
            failures.add_row(str(f.ledger_id), f.record_id, f.operation, str(f.failures), f.last_error or "")
        console.print(failures)


@app.command()
def retry() -> None:
    """Re-queue failed transfers; the running service delivers them (or run `registry export deliver`)."""
    settings = _settings(ExportDatabaseSettings)
    count = _with_database(settings.database_url, application.retry_failed)
    console.print(f"re-queued {count} failed operation(s)")


@app.command()
def deliver() -> None:
    """Deliver everything waiting now, e.g. from cron for scheduled batches. Waits for nobody: when a
    running instance holds the delivery lease, that instance delivers and this command says so."""
    settings = _settings(ExportSettings)

    async def work(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int, bool, bool]:
        sink = open_sink(settings)
        worker = DeliveryWorker(
            Transactions(sessions),
            sink,
            owner=f"{settings.lease_owner}:cli",
            batch_size=settings.delivery_batch,
            max_failures=settings.max_failures,
            lease_s=settings.lease_s,
        )
        try:
            result = await worker.deliver_all()
        finally:
            await worker.release()
            await sink.close()
        return result.delivered, result.refused, result.unavailable, result.leased

    delivered, refused, unavailable, leased = _with_database(settings.database_url, work)
    if not leased:
        console.print("another export instance holds the delivery lease and delivers; nothing done")
        return
    console.print(f"delivered {delivered} operation(s) to the {settings.sink} sink; {refused} refused")
    if unavailable:
        errors.print(f"the {settings.sink} sink is unavailable; the rest waits")
        raise typer.Exit(1)


@app.command("public-key")
def public_key() -> None:
    """The public key that verifies file-drop manifests (PEM), for the Nordic side."""
    settings = _settings(ExportSettings)
    if settings.signing_key is None:
        errors.print("EXPORT_SIGNING_KEY is not set")
        raise typer.Exit(2)
    key = signing_key(key_bytes(settings.signing_key)).public_key()
    console.print(f"# key id {key_id(key)}", highlight=False)
    console.print(public_key_pem(key), end="", highlight=False)
