"""`registry intake ...`: operator and staff commands of the intake service."""

from __future__ import annotations

import typer

app = typer.Typer(help="Commands of the intake service.", no_args_is_help=True)
