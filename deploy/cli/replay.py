"""`registry replay`: reset a stopped service's consumer offsets so it consumes its inputs again."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from deploy.cli.topics import console, errors, kafka_settings, reflowed, run
from deploy.ops import OpsError
from deploy.ops.replay import ReplayPlan, apply_replay, parse_time, plan_replay, replay_scope
from shared.settings import KafkaSettings


@reflowed
def replay(
    service: Annotated[
        str,
        typer.Argument(
            metavar="GROUP",
            help="A service (intake, validation, stats, export: all its consumer groups) or one consumer group.",
        ),
    ],
    to_beginning: Annotated[bool, typer.Option("--to-beginning", help="From the start of each log.")] = False,
    to_time: Annotated[
        str | None,
        typer.Option(
            "--to-time", metavar="ISO8601", help="From the first record at or after this time, e.g. 2026-01-31T00:00Z."
        ),
    ] = None,
    topic: Annotated[
        list[str] | None, typer.Option(help="Only this input topic (repeatable); default: all the service's inputs.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Move a service's committed offsets back, so that it consumes its input topics again from there.

    The service must be stopped: the offsets of a group with active members cannot be reset, and the
    command says which members are still there. The offsets to commit are shown first, and asked about
    unless --yes. A replay never moves a group forward, so no record is skipped.

    Effects are idempotent: each service stores the ids of the events it processed in the same transaction
    as their effect, so a replay applies only what the service has not applied yet (after restoring an older
    database, say) and counts nothing twice; outputs carry ids derived from their inputs, so what a service
    publishes again is dropped downstream as the duplicate it is. To drop the stats projection and rebuild it
    from scratch, use `registry stats rebuild`; to recode all history after a coding-table update,
    `registry recode`.
    """
    if to_beginning == (to_time is not None):
        raise typer.BadParameter("give exactly one of --to-beginning or --to-time ISO8601")
    settings = kafka_settings()
    try:
        moment = parse_time(to_time) if to_time is not None else None
        scope = replay_scope(settings, service, topic or ())
    except OpsError as error:
        raise typer.BadParameter(str(error)) from error
    plans = run(settings, _plan(settings, scope, moment))
    _print_plans(plans, moment)
    if all(reset.target == reset.current for plan in plans for reset in plan.resets):
        console.print("Nothing to reset: the offsets are already there.")
        return
    if not yes and not typer.confirm(f"Reset the offsets of {', '.join(p.group for p in plans)}?", default=False):
        raise typer.Abort()
    run(settings, _apply(settings, plans))
    again = sum(plan.again for plan in plans)
    console.print(
        f"[green]Reset.[/] Start {service} again: it will process {again} record(s) again, skipping what it "
        "has already applied."
    )


async def _plan(settings: KafkaSettings, scope: dict[str, list[str]], moment: datetime | None) -> list[ReplayPlan]:
    # Every group is checked before any is reset, so a refusal leaves all of them as they were.
    return [await plan_replay(settings, group, topics, moment) for group, topics in scope.items()]


async def _apply(settings: KafkaSettings, plans: Sequence[ReplayPlan]) -> None:
    for plan in plans:
        await apply_replay(settings, plan)


def _print_plans(plans: Sequence[ReplayPlan], moment: datetime | None) -> None:
    where = "the beginning" if moment is None else moment.isoformat()
    table = Table(
        "group",
        "topic",
        "partition",
        "committed",
        "reset to",
        "processed again",
        "end",
        title=f"Replay from {escape(where)}",
        title_justify="left",
    )
    for plan in plans:
        for reset in plan.resets:
            table.add_row(
                plan.group,
                reset.topic,
                str(reset.partition),
                "-" if reset.current is None else str(reset.current),
                str(reset.target),
                str(reset.again),
                str(reset.end),
            )
    console.print(table)
    if not any(plan.resets for plan in plans):
        errors.print("[yellow]No partitions to reset.[/]")


@reflowed
def recode(yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False) -> None:
    """Recode all history after a coding-table update: validation consumes every received submission again
    and codes and checks it with the tables it has now.

    A plain replay would not do it: validation skips events it has processed. So, with the service stopped,
    this resets the `validation` group to the beginning and then empties validation's processed ids and its
    tumour ledger (in that order: if the second step fails, a restart merely skips everything, and running the
    command again finishes the job). Outcomes of the new tables carry new event ids; stats and export key what
    they keep by submission and report, so a recoded outcome replaces the old one instead of adding to it.
    """
    from sqlalchemy import delete

    from services.validation.settings import ValidationSettings
    from services.validation.storage import ProcessedMessage, Tumour
    from shared.db import create_engine
    from shared.settings import load_settings

    settings = kafka_settings()
    database_url = load_settings(ValidationSettings).database_url
    scope = replay_scope(settings, "validation")
    plans = run(settings, _plan(settings, scope, None))
    _print_plans(plans, None)
    if not yes and not typer.confirm("Reset validation and forget what it processed?", default=False):
        raise typer.Abort()
    run(settings, _apply(settings, plans))

    async def forget() -> int:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(delete(Tumour))
                result = await connection.execute(delete(ProcessedMessage))
                return int(result.rowcount or 0)
        finally:
            await engine.dispose()

    forgotten = asyncio.run(forget())
    console.print(
        f"[green]Ready to recode.[/] {forgotten} processed event(s) forgotten; start validation again and it "
        f"recodes {sum(plan.again for plan in plans)} submission(s)."
    )
