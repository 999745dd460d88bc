"""`registry serve <service>`: run one service process (the same as `python -m services.<service>`)."""

from __future__ import annotations

import importlib
from enum import StrEnum

import typer


class ServiceChoice(StrEnum):
    INTAKE = "intake"
    VALIDATION = "validation"
    STATS = "stats"
    EXPORT = "export"


def serve(service: ServiceChoice = typer.Argument(..., help="Which service to run")) -> None:
    """Run a service until SIGTERM or Ctrl-C; configuration comes from the environment."""
    importlib.import_module(f"services.{service.value}.__main__").main()
