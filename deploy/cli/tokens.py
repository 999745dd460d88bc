"""`registry tokens ...`: issue API tokens for hospitals and staff (only their digests are stored)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shared.auth import AuthSettings, Role, TokenStore, issue_token
from shared.hospitals import BY_ID

app = typer.Typer(help="API tokens for hospitals and registry staff.", no_args_is_help=True)
console = Console()


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Who holds the token, e.g. 'ous-portal' or 'coder-anna'")],
    hospital: Annotated[str | None, typer.Option(help="Hospital id for a hospital token")] = None,
    staff: Annotated[bool, typer.Option("--staff", help="A registry staff token")] = False,
) -> None:
    """Issue a token and print it once; only its SHA-256 digest is kept."""
    if staff == (hospital is not None):
        raise typer.BadParameter("give exactly one of --hospital ID or --staff")
    if hospital is not None and hospital not in BY_ID:
        raise typer.BadParameter(f"unknown hospital {hospital!r}; known: {', '.join(BY_ID)}")
    path = AuthSettings().tokens_file
    token = issue_token(path, name, Role.STAFF if staff else Role.HOSPITAL, hospital)
    console.print(f"[bold]{name}[/]: {token}")
    console.print(f"[dim]digest stored in {path}; the token itself is not kept anywhere[/]")


@app.command("list")
def list_tokens() -> None:
    """List token holders (never the tokens)."""
    path = AuthSettings().tokens_file
    table = Table("name", "role", "hospital")
    for entry in TokenStore.entries_in(path):
        table.add_row(entry.name, entry.role.value, entry.hospital_id or "")
    console.print(table)
