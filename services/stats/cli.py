"""`registry stats ...`: operator and staff commands of the stats service."""

from __future__ import annotations

import typer

app = typer.Typer(help="Commands of the stats service.", no_args_is_help=True)
