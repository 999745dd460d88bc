"""`registry deadletters ...`: inspect the messages consumers gave up on, and redrive them."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Annotated

import typer
from rich.console import Group
from rich.json import JSON
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from deploy.cli.topics import console, errors, kafka_settings, progress_bar, reflowed, run
from deploy.ops import OpsError
from deploy.ops.deadletters import (
    LetterId,
    Redriven,
    SealedError,
    StoredLetter,
    fetch_letter,
    latest,
    list_dead_letters,
    original_headers,
    original_key,
    original_value,
    plan_redrive,
    readable,
    redrive,
    vault_key_from_env,
)
from shared.settings import SettingsError

app = typer.Typer(
    help="Dead letters: messages a consumer gave up on (registry.dead-letters), with the error. List, show, redrive.",
    no_args_is_help=True,
)

SourceTopic = Annotated[
    str | None, typer.Option(help="Only letters from this topic, e.g. intake.submissions.received.")
]
Unseal = Annotated[
    bool,
    typer.Option(
        "--unseal",
        help="Open sealed values (the hospitals' inbound topic: they may hold identity numbers) with the key "
        "in INTAKE_VAULT_KEY.",
    ),
]


def _vault_key(unseal: bool) -> bytes | None:
    if not unseal:
        return None
    try:
        return vault_key_from_env()
    except SettingsError as error:
        errors.print(f"[red]--unseal needs the vault key: {escape(str(error))}[/]")
        raise typer.Exit(2) from error


def _letter_id(text: str) -> LetterId:
    try:
        return LetterId.parse(text)
    except OpsError as error:
        raise typer.BadParameter(str(error)) from error


def _shown(raw: bytes) -> str:
    kind, value = readable(raw)
    return json.dumps(value) if kind == "json" else value if kind == "text" else f"base64:{value}"


def _source(stored: StoredLetter) -> str:
    letter = stored.letter
    return f"{letter.source_topic} [dim]{letter.partition}@{letter.offset}[/]"


def _redriven(stored: StoredLetter, marker: Redriven | None) -> str:
    if marker is None:
        return ""
    when = marker.redriven_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return when if marker.dead_letter == stored.id else f"{when} (as {marker.dead_letter})"


@app.command("list")
@reflowed
def list_letters(
    source_topic: SourceTopic = None,
    limit: Annotated[int, typer.Option(min=1, help="Show the most recent N.")] = 50,
) -> None:
    """Read the dead-letter topic from its start to its end and list the letters: when, from where
    (topic, partition@offset), which consumer group, the error, and whether one was redriven."""
    settings = kafka_settings()
    with progress_bar("Reading dead letters") as progress:
        listing = run(settings, list_dead_letters(settings, source_topic, progress))
    shown = latest(listing.letters, limit)
    table = Table("id", "failed at (UTC)", "source", "group", "error type", "error", "redriven")
    for column in (0, 1, 2, 6):
        table.columns[column].no_wrap = True
    table.columns[5].overflow = "fold"
    for stored in shown:
        letter = stored.letter
        marker = listing.marker_for(stored)
        table.add_row(
            stored.id,
            letter.failed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            _source(stored),
            letter.consumer_group,
            letter.error_type,
            escape(letter.error[:300]),
            _redriven(stored, marker),
        )
    table.caption = (
        f"{len(shown)} of {len(listing.letters)} letter(s)"
        + (f" from {source_topic}" if source_topic else "")
        + " · registry deadletters show ID"
    )
    console.print(table)
    if listing.undecodable:
        errors.print(f"[yellow]Not dead letters (skipped): {', '.join(listing.undecodable)}[/]")


@app.command()
@reflowed
def show(
    letter_id: Annotated[str, typer.Argument(metavar="ID", help="PARTITION:OFFSET as listed, or OFFSET.")],
    unseal: Unseal = False,
) -> None:
    """One dead letter decoded: its envelope, the error, and the original key, headers and value (as
    JSON when it is JSON). A sealed value stays sealed unless --unseal is given."""
    settings = kafka_settings()
    vault_key = _vault_key(unseal)
    stored, marker = run(settings, fetch_letter(settings, _letter_id(letter_id)))
    letter = stored.letter
    envelope = Table.grid(padding=(0, 2))
    key = original_key(letter)
    redriven = "no"
    if marker is not None:
        redriven = (
            f"{marker.redriven_at.isoformat(timespec='seconds')} by {marker.redriven_by}, to partition "
            f"{marker.redriven_partition} offset {marker.redriven_offset}"
        )
        if marker.dead_letter != stored.id:
            redriven += f" (as letter {marker.dead_letter}, of the same record)"
    for label, text in (
        ("dead letter", f"{stored.id} ({letter.event_id})"),
        ("written by", f"{letter.producer}, consumer group {letter.consumer_group}"),
        ("failed at", letter.failed_at.isoformat()),
        ("attempts", str(letter.attempts)),
        ("source", f"{letter.source_topic} partition {letter.partition} offset {letter.offset}"),
        ("key", "(none)" if key is None else _shown(key)),
        ("headers", ", ".join(f"{name}={_shown(raw)}" for name, raw in original_headers(letter)) or "(none)"),
        ("redriven", redriven),
    ):
        envelope.add_row(f"[bold]{label}[/]", escape(text))
    console.print(Panel(envelope, title="dead letter", title_align="left"))
    console.print(Panel(escape(letter.error), title=f"[red]{escape(letter.error_type)}[/]", title_align="left"))
    try:
        value = original_value(letter, vault_key)
    except SealedError as error:
        console.print(Panel(f"[yellow]{escape(str(error))}[/]", title="value (fernet)", title_align="left"))
        return
    kind, shown = readable(value)
    body = JSON.from_data(shown) if kind == "json" else escape(shown)
    title = f"value ({kind}, {len(value)} bytes{', unsealed' if letter.value_encoding == 'fernet' else ''})"
    console.print(Panel(Group(body), title=title, title_align="left"))


@app.command("redrive")
@reflowed
def redrive_letters(
    letter_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[ID]...", help="PARTITION:OFFSET as listed, or OFFSET.")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Every letter not redriven yet.")] = False,
    source_topic: SourceTopic = None,
    unseal: Unseal = False,
    force: Annotated[bool, typer.Option(help="Redrive named letters even if they were redriven before.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Only show what would be redriven.")] = False,
) -> None:
    """Put dead letters back on their source topic and partition (original key, value and headers;
    acks=all), so the consumer tries them again, e.g. after the fix for their error is deployed.

    Each redriven letter is recorded on registry.dead-letters.redriven, so a second --all skips it (and any
    other letter of the same record). Consumers skip event ids they processed, so a record redriven twice
    (if the command died between the two writes) appears twice on the topic but takes effect once. A
    letter that fails again comes back as a new dead letter."""
    if every == bool(letter_ids):
        raise typer.BadParameter("give the letters' ids or --all, not both or neither")
    settings = kafka_settings()
    vault_key = _vault_key(unseal)
    ids = None if every else [_letter_id(text) for text in letter_ids or ()]
    with progress_bar("Reading dead letters") as progress:
        plan = run(
            settings,
            plan_redrive(
                settings, ids, source_topic=source_topic, force=force, can_unseal=unseal, on_progress=progress
            ),
        )
    for stored, reason in plan.skipped:
        console.print(f"[dim]skipped {stored.id}: {escape(reason)}[/]")
    if not plan.selected:
        console.print("Nothing to redrive.")
        return
    if dry_run:
        table = Table("id", "source", "error type", title="Would redrive", title_justify="left")
        for stored in plan.selected:
            table.add_row(stored.id, _source(stored), stored.letter.error_type)
        console.print(table)
        return
    with progress_bar("Redriving") as progress:
        result = run(settings, redrive(settings, plan, vault_key, progress))
    table = Table("id", "source", "redriven to", title="Redriven", title_justify="left")
    for marker in result.redriven:
        table.add_row(
            marker.dead_letter,
            f"{marker.source_topic} [dim]{marker.source_partition}@{marker.source_offset}[/]",
            f"{marker.redriven_partition}@{marker.redriven_offset}",
        )
    console.print(table)
    for stored, reason in result.failed:
        errors.print(f"[red]{stored.id}: {escape(reason)}[/]")
    if result.failed:
        raise typer.Exit(1)
