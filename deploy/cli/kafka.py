"""`registry kafka ...`: the local Apache Kafka broker or cluster run from the official jars."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deploy.local.kafka import KafkaCluster, KafkaError

app = typer.Typer(help="Run Apache Kafka (KRaft) locally from the official jars, without Docker.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)

Name = Annotated[
    str | None, typer.Option(help="Cluster name (state in var/kafka/<name>); default: every cluster, or '<n>-node'.")
]


@app.command()
def up(
    nodes: Annotated[int, typer.Option(help="1 for development, 3 for the fault tests.")] = 1,
    name: Name = None,
) -> None:
    """Fetch the jars if needed, start the broker(s) and wait until they serve metadata."""
    if nodes not in (1, 3):
        raise typer.BadParameter("must be 1 or 3", param_hint="--nodes")
    cluster = KafkaCluster(name, nodes)
    with console.status(f"Starting Kafka [bold]{cluster.name}[/] ({nodes} node{'s' if nodes > 1 else ''})…"):
        try:
            cluster.start()
        except KafkaError as error:
            errors.print(f"[red]{error}[/]")
            raise typer.Exit(1) from error
    console.print(f"Kafka [bold]{cluster.name}[/] is up. Bootstrap servers: [bold green]{cluster.bootstrap_servers}[/]")
    console.print(f"  export KAFKA_BOOTSTRAP_SERVERS={cluster.bootstrap_servers}", highlight=False)


@app.command()
def down(name: Name = None) -> None:
    """Stop the named cluster, or every local cluster (SIGTERM, then SIGKILL after 30 s)."""
    for cluster in _clusters(name):
        with console.status(f"Stopping Kafka [bold]{cluster.name}[/]…"):
            cluster.stop()
        console.print(f"Kafka [bold]{cluster.name}[/] stopped.")


@app.command()
def status(name: Name = None) -> None:
    """Show each node's process, ports and log file."""
    table = Table("cluster", "node", "pid", "state", "port", "controller port")
    table.add_column("log", overflow="fold")
    for cluster in _clusters(name):
        for node in cluster.status():
            table.add_row(
                cluster.name,
                str(node.node_id),
                str(node.pid or "-"),
                "[green]running[/]" if node.alive else "[red]stopped[/]",
                str(node.port),
                str(node.controller_port),
                str(node.log_file),
            )
    console.print(table)


def _clusters(name: str | None) -> list[KafkaCluster]:
    clusters = [cluster for cluster in KafkaCluster.discover() if name in (None, cluster.name)]
    if not clusters:
        errors.print(f"No local Kafka cluster{f' named {name!r}' if name else ''} has been started.")
        raise typer.Exit(1)
    return clusters
