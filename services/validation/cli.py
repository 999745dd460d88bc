"""`registry iccc code` and `registry check`: ICCC-3 coding and the edit checks as batch commands."""

from __future__ import annotations

import typer

iccc_app = typer.Typer(help="ICCC-3 coding (SEER recode, IARC 2017).", no_args_is_help=True)


def check() -> None:
    """Check forms read as JSON lines on standard input; write one JSON line of findings per form."""
    raise typer.Exit(2)
