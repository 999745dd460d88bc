"""`registry`: the operator CLI. Each concern contributes a Typer sub-app; this module only composes them."""

from __future__ import annotations

import typer

from deploy.cli import deadletters, docs, generate, kafka, platform, postgres, replay, services, tokens, topics
from services.export import cli as export_cli
from services.intake import cli as intake_cli
from services.stats import cli as stats_cli
from services.validation import cli as validation_cli

app = typer.Typer(
    name="registry",
    help="Operate the childhood cancer registry platform: the local broker, the services, coding and checks.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("up")(platform.up)
app.command("down")(platform.down)
app.command("status")(platform.status)
app.add_typer(kafka.app, name="kafka")
app.add_typer(postgres.app, name="postgres")
app.add_typer(topics.app, name="topics")
app.add_typer(deadletters.app, name="deadletters")
app.command("replay")(replay.replay)
app.command("recode")(replay.recode)
app.command("serve")(services.serve)
app.command("generate")(generate.generate)
app.command("docs")(docs.docs)
app.add_typer(tokens.app, name="tokens")
app.add_typer(intake_cli.app, name="intake")
app.add_typer(validation_cli.iccc_app, name="iccc")
app.command("check")(validation_cli.check)
app.add_typer(stats_cli.app, name="stats")
app.add_typer(export_cli.app, name="export")


def main() -> None:
    app()
