"""`registry topics ...`: create the platform's topics, describe them, show consumer lag.

Also the plumbing the other Kafka operator commands share (`deadletters`, `replay`): settings from the
environment, running the async operation with readable errors, and progress bars.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from aiokafka.errors import KafkaConnectionError, KafkaError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from deploy.ops import OpsError
from deploy.ops.clients import Progress as ProgressCallback
from deploy.ops.groups import GROUP_INPUTS, groups_of
from deploy.ops.lag import consumer_lag
from deploy.ops.topics import create_topics, describe_topics
from shared.settings import KafkaSettings, SettingsError, load_settings

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(help="The platform's Kafka topics: create, describe, consumer lag.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


def kafka_settings() -> KafkaSettings:
    """KAFKA_* from the environment: bootstrap servers, topic prefix, replication factor, min ISR."""
    try:
        return load_settings(KafkaSettings)
    except SettingsError as error:
        errors.print(f"[red]{escape(str(error))}[/]")
        raise typer.Exit(2) from error


def run(settings: KafkaSettings, work: Coroutine[Any, Any, T]) -> T:
    """Run an operation; what the operator has to fix ends the command with its message, not a trace."""
    try:
        return asyncio.run(work)
    except (OpsError, SettingsError) as error:
        errors.print(f"[red]{escape(str(error))}[/]")
        raise typer.Exit(1) from error
    except KafkaConnectionError as error:
        errors.print(
            f"[red]Kafka does not answer at {settings.bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS): "
            f"{escape(str(error))}[/]\nA local broker starts with `registry kafka up`."
        )
        raise typer.Exit(1) from error
    except KafkaError as error:
        errors.print(f"[red]Kafka at {settings.bootstrap_servers}: {escape(repr(error))}[/]")
        raise typer.Exit(1) from error


def reflowed(command: F) -> F:
    """Typer keeps the line breaks of a docstring's later paragraphs; joined, the help wraps to the terminal."""
    paragraphs = inspect.cleandoc(command.__doc__ or "").split("\n\n")
    command.__doc__ = "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)
    return command


@contextmanager
def progress_bar(description: str) -> Iterator[ProgressCallback]:
    """A bar on stderr (stdout stays the result) fed by the ops' (done, total) callbacks; none when stderr
    is no terminal (a pipe or a log would get blank lines)."""
    if not errors.is_terminal:
        yield lambda done, total: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=errors, transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _prefix_note(settings: KafkaSettings) -> str:
    return f", topic prefix [bold]{settings.topic_prefix}[/]" if settings.topic_prefix else ""


@app.command()
@reflowed
def create() -> None:
    """Create every platform topic that is missing, as declared in shared/topics.py (partitions, key,
    cleanup policy) with KAFKA_REPLICATION_FACTOR and KAFKA_MIN_INSYNC_REPLICAS. Safe to run again:
    existing topics are left as they are and only reported, with any way they differ."""
    settings = kafka_settings()
    console.print(
        f"Kafka at {settings.bootstrap_servers}: replication factor {settings.replication_factor}, "
        f"min ISR {settings.min_insync_replicas}{_prefix_note(settings)}"
    )
    with console.status("Creating topics…"):
        results = run(settings, create_topics(settings))
    table = Table("topic", "result", "detail")
    style = {"created": "[green]created[/]", "present": "already present", "failed": "[red]failed[/]"}
    for result in results:
        detail = f"[yellow]{escape(result.detail)}[/]" if result.outcome == "present" else escape(result.detail)
        table.add_row(result.name, style[result.outcome], detail)
    console.print(table)
    if any(result.outcome == "failed" for result in results):
        raise typer.Exit(1)


@app.command()
@reflowed
def describe(
    name: Annotated[
        str | None, typer.Argument(help="A topic, e.g. intake.receipts (the prefix is added); default: all.")
    ] = None,
) -> None:
    """Partitions with their leader, replicas and in-sync replicas, the cleanup policy and min ISR on the
    cluster, and the key and purpose declared in shared/topics.py."""
    settings = kafka_settings()
    descriptions = run(settings, describe_topics(settings, None if name is None else [name]))
    for topic in descriptions:
        if not topic.exists:
            errors.print(f"[red]{topic.name}: does not exist[/] (registry topics create)")
            continue
        spec = topic.spec
        console.print(f"[bold]{topic.name}[/]" + (f"  [dim]{escape(spec.description)}[/]" if spec else ""))
        console.print(
            f"  key: {spec.key.value if spec else '(not a platform topic)'}  ·  "
            f"cleanup.policy: {topic.config.get('cleanup.policy', '?')}  ·  "
            f"min.insync.replicas: {topic.config.get('min.insync.replicas', '?')}  ·  "
            f"retention.ms: {topic.config.get('retention.ms', '?')}",
            highlight=False,
        )
        for difference in topic.drift(settings):
            console.print(f"  [yellow]differs from its declaration: {escape(difference)}[/]")
        table = Table("partition", "leader", "replicas", "in-sync replicas")
        for p in topic.partitions:
            isr = ",".join(map(str, p.isr))
            table.add_row(
                str(p.partition),
                str(p.leader) if p.leader >= 0 else "[red]none[/]",
                ",".join(map(str, p.replicas)),
                f"[yellow]{isr}[/]" if p.under_replicated else isr,
            )
        console.print(table)
    if not all(topic.exists for topic in descriptions):
        raise typer.Exit(1)


@app.command()
@reflowed
def lag(
    group: Annotated[
        list[str] | None,
        typer.Option(help="A consumer group or service (repeatable); default: every service's groups."),
    ] = None,
) -> None:
    """Per consumer group and topic: each partition's committed offset, end offset and lag, with totals.
    The groups are the services' (intake reads the hospitals' inbound topic as intake-inbound). A partition
    the group never committed shows no offset, and everything in it counts as lag, since services start
    from the earliest record."""
    settings = kafka_settings()
    groups = [g for name in group for g in groups_of(name)] if group else list(GROUP_INPUTS)
    results = run(settings, consumer_lag(settings, list(dict.fromkeys(groups))))
    for result in results:
        state = result.group
        members = f"{len(state.members)} member{'s' if len(state.members) != 1 else ''}"
        table = Table(
            "topic",
            "partition",
            "committed",
            "end",
            "lag",
            title=f"[bold]{state.group}[/] ({state.label}, {members})",
            title_justify="left",
        )
        totals = result.topic_totals()
        for i, p in enumerate(result.partitions):
            table.add_row(
                p.topic,
                str(p.partition),
                "-" if p.committed is None else str(p.committed),
                str(p.end),
                f"[yellow]{p.lag}[/]" if p.lag else "0",
            )
            if i + 1 == len(result.partitions) or result.partitions[i + 1].topic != p.topic:
                table.add_row(f"[bold]{p.topic}[/]", "all", "", "", f"[bold]{totals[p.topic]}[/]", end_section=True)
        table.add_row("[bold]total[/]", "", "", "", f"[bold]{result.total}[/]")
        console.print(table)
        for topic in result.missing_topics:
            errors.print(f"  [yellow]{topic} does not exist[/] (registry topics create)")
