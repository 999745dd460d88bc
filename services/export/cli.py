"""`registry export ...`: operator and staff commands of the export service."""

from __future__ import annotations

import typer

app = typer.Typer(help="Commands of the export service.", no_args_is_help=True)
