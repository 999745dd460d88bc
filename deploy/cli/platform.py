"""`registry up` / `down` / `status`: the whole platform on this machine."""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deploy.local.platform import LocalPlatform
from deploy.ops.groups import GROUP_INPUTS
from deploy.ops.lag import consumer_lag
from shared.settings import KafkaSettings

console = Console()


def up(
    demo: Annotated[bool, typer.Option(help="Stream a synthetic year of reports through the platform.")] = False,
    bootstrap_servers: Annotated[
        str | None, typer.Option(envvar="REGISTRY_EXTERNAL_KAFKA", help="Use this Kafka instead of a local one.")
    ] = None,
) -> None:
    """Start Kafka and the four services (SQLite under var/), print where everything is; Ctrl-C stops it all."""
    platform = LocalPlatform(bootstrap_servers=bootstrap_servers)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with console.status("Starting Kafka (KRaft, from the official jars)…"):
            platform.start_kafka()
        console.print(f"[green]✓[/] Kafka at {platform.bootstrap_servers}")
        tokens = platform.demo_tokens()
        for service in platform.services:
            with console.status(f"Starting {service.name}…"):
                platform.start_service(service)
                platform.wait_ready(service)
            console.print(f"[green]✓[/] {service.name} at {service.url}")
        _print_endpoints(platform, tokens)
        if demo:
            from deploy.cli.generate import stream_demo

            stream_demo(platform, tokens)
        console.print("[bold]Running.[/] Ctrl-C stops everything.")
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        with console.status("Stopping services, then Kafka…"):
            platform.stop()
        console.print("Stopped.")


def down() -> None:
    """Stop the services and the broker a previous `registry up` left running."""
    platform = LocalPlatform()
    platform.stop()
    console.print("Stopped.")


def status() -> None:
    """Broker and services: process, readiness, and each consumer group's lag."""
    platform = LocalPlatform()
    table = Table("component", "pid", "ready", "where")
    if platform.kafka is not None:
        for node in platform.kafka.status():
            table.add_row(
                f"kafka node {node.node_id}", str(node.pid or "-"), _yes(node.alive), f"127.0.0.1:{node.port}"
            )
    for service in platform.services:
        pid = platform.pid(service)
        table.add_row(service.name, str(pid or "-"), _yes(bool(pid) and platform.ready(service)), service.url)
    console.print(table)
    if platform.kafka is None or not any(node.alive for node in platform.kafka.status()):
        return
    settings = KafkaSettings(bootstrap_servers=platform.bootstrap_servers)
    lags = asyncio.run(consumer_lag(settings, list(GROUP_INPUTS)))
    lag_table = Table("consumer group", "state", "members", "lag (records)")
    for lag in lags:
        lag_table.add_row(lag.group.group, lag.group.state, str(len(lag.group.members)), str(lag.total))
    console.print(lag_table)


def _yes(value: bool) -> str:
    return "[green]yes[/]" if value else "[red]no[/]"


def _print_endpoints(platform: LocalPlatform, tokens: dict[str, str]) -> None:
    for service in platform.services:
        console.print(
            f"[bold]{service.name:<10}[/] API docs {service.url}/docs   metrics {service.url}/metrics   "
            f"readiness {service.url}/ready",
            highlight=False,
            soft_wrap=True,
        )
    intake, stats = platform.service("intake").url, platform.service("stats").url
    console.print(f"Demo API tokens (a hospital's, and staff's) are in [bold]{platform.demo_tokens_file}[/]; e.g.")
    console.print(
        f"  curl -H 'Authorization: Bearer {tokens['ous']}' {intake}/v1/receipts", highlight=False, soft_wrap=True
    )
    console.print(
        f"  curl -H 'Authorization: Bearer {tokens['staff']}' {stats}/stats/registry", highlight=False, soft_wrap=True
    )
    dashboard = platform.service("stats.dashboard").url
    console.print(f"Dashboard: {dashboard} (sign in with a token from that file)", highlight=False, soft_wrap=True)
    console.print(f"Logs: {platform.log_dir}/<service>.log")
