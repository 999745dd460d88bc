"""`registry kafka ...`: the local Apache Kafka broker or cluster run from the official jars."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run Apache Kafka (KRaft) locally from the official jars, without Docker.", no_args_is_help=True)
