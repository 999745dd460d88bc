"""`registry`: the operator CLI. Each concern contributes a Typer sub-app; this module only composes them."""

from __future__ import annotations

import typer

from deploy.cli import kafka

app = typer.Typer(
    name="registry",
    help="Operate the childhood cancer registry platform: the local broker, the services, coding and checks.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(kafka.app, name="kafka")


def main() -> None:
    app()
