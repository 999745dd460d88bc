"""`registry stats ...`: operator and staff commands of the stats service."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.stats.rebuild import RebuildReport, rebuild
from services.stats.settings import StatsSettings
from shared.service import run_event_loop
from shared.settings import load_settings

app = typer.Typer(help="Commands of the stats service.", no_args_is_help=True)
console = Console()


@app.command("rebuild")
def rebuild_command(
    batch_size: Annotated[int, typer.Option(min=100, max=20_000, help="Events per transaction")] = 10_000,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Drop the stats projection and replay the input topics from the beginning (stop the service first)."""
    settings = load_settings(StatsSettings)
    if not yes:
        typer.confirm(f"Rebuild the stats projection in {settings.database_url}?", abort=True)
    with Progress(
        TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("replay", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            report = run_event_loop(rebuild(settings, batch_size=batch_size, progress=advance))
        except RuntimeError as exc:  # e.g. the input topics do not exist on this cluster
            console.print(f"[red]rebuild failed:[/] {exc}")
            raise typer.Exit(1) from None
    _print(report)


def _print(report: RebuildReport) -> None:
    table = Table("", "count", title="stats rebuilt", show_header=False)
    rate = report.records / report.seconds if report.seconds else 0
    table.add_row("records read", f"{report.records:,}")
    for event_type, count in sorted(report.by_topic.items()):
        table.add_row(f"  applied {event_type}", f"{count:,}")
    table.add_row("duplicates skipped", f"{report.duplicates:,}")
    table.add_row("undecodable skipped", f"{report.undecodable:,}")
    for name, count in report.rows.items():
        table.add_row(name, f"{count:,}")
    if report.registry is not None:
        figures = report.registry
        table.add_row("registry: children, tumours", f"{figures.children:,}, {figures.tumours:,}")
        for form_type, counts in figures.submissions.items():
            table.add_row(
                f"registry: {form_type.value} received/accepted/rejected",
                f"{counts.received:,}/{counts.accepted:,}/{counts.rejected:,}",
            )
    table.add_row("reminders announced", f"{report.reminders_announced:,}")
    table.add_row("snapshots published", f"{report.snapshots_published:,}")
    table.add_row("time", f"{report.seconds:.1f} s ({rate:,.0f} records/s)")
    console.print(table)
