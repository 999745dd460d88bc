"""`registry postgres ...`: the local PostgreSQL server from Debian's packages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deploy.local.postgres import DEFAULT_DATA_DIR, DEFAULT_PORT, LocalPostgres, PostgresError, ensure_installed

app = typer.Typer(help="Run PostgreSQL locally (trust auth on 127.0.0.1; development only).", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)

DataDir = Annotated[Path, typer.Option(help="Data directory, owned by the postgres user when run as root.")]


@app.command()
def up(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1.")] = DEFAULT_PORT,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Install PostgreSQL if missing, initialise the data directory on first use and start the server."""
    try:
        with console.status("Starting PostgreSQL…"):
            ensure_installed()
            server = LocalPostgres(data_dir, port)
            server.start()
    except PostgresError as error:
        errors.print(f"[red]{error}[/]")
        raise typer.Exit(1) from error
    console.print(f"PostgreSQL is up on port [bold]{server.port}[/].")
    console.print(f"  export DATABASE_URL={server.url()}", highlight=False)


@app.command()
def down(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Stop the server (fast mode: open transactions are rolled back)."""
    _server(data_dir).stop()
    console.print("PostgreSQL stopped.")


@app.command()
def status(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Show whether the server runs, its process, port and log file."""
    state = _server(data_dir).status()
    table = Table("state", "pid", "port")
    table.add_column("data directory", overflow="fold")
    table.add_column("log", overflow="fold")
    table.add_row(
        "[green]running[/]" if state.running else "[red]stopped[/]",
        str(state.pid or "-"),
        str(state.port or "-"),
        str(state.data_dir),
        str(state.log_file),
    )
    console.print(table)


def _server(data_dir: Path) -> LocalPostgres:
    try:
        return LocalPostgres(data_dir)
    except PostgresError as error:
        errors.print(f"[red]{error}[/]")
        raise typer.Exit(1) from error
