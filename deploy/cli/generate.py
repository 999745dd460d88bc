"""`registry generate`: realistic synthetic hospital submissions, as JSON lines or streamed to intake."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer
from rich.console import Console
from rich.table import Table

from deploy.synthetic import GeneratorConfig, Item, generator
from deploy.synthetic.streaming import STAFF, Pace, PeriodProgress, StreamError, StreamReport, post_http, produce_kafka
from shared.hospitals import BY_ID
from shared.settings import KafkaSettings, SettingsError, load_settings

if TYPE_CHECKING:
    from deploy.local.platform import LocalPlatform

_err = Console(stderr=True)


def generate(
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same output, byte for byte")] = 1,
    years: Annotated[int, typer.Option(min=1, max=55, help="Length of the period in years")] = 5,
    start_year: Annotated[int, typer.Option(min=1985, max=2039, help="First year of the period")] = 2019,
    cases_per_year: Annotated[float, typer.Option(min=0.001, help="New cases a year (Norway: about 200)")] = 200.0,
    error_share: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Share of submissions that are erroneous (then resent)")
    ] = 0.05,
    late_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of reports sent months late")] = 0.05,
    correction_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of diagnosis and treatment reports corrected later")
    ] = 0.03,
    reservation_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of children whose family reserves against NOPHO-Care")
    ] = 0.03,
    out: Annotated[
        str | None, typer.Option("--out", metavar="FILE|-", help="Write JSON lines to FILE or - (stdout, the default)")
    ] = None,
    to_http: Annotated[
        str | None, typer.Option("--to-http", metavar="URL", help="POST to intake's API at URL (needs --tokens-file)")
    ] = None,
    tokens_file: Annotated[
        Path | None,
        typer.Option(help='JSON object of bearer tokens: hospital id -> token, and "staff" -> token'),
    ] = None,
    to_kafka: Annotated[
        bool, typer.Option("--to-kafka", help="Produce to the hospital inbound topic (KAFKA_BOOTSTRAP_SERVERS)")
    ] = False,
    speed: Annotated[
        float | None, typer.Option(min=0.001, help="Seconds the whole period takes when streaming (default: flat out)")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=512, help="Requests in flight with --to-http")] = 16,
) -> None:
    """Generate the hospitals' submissions and the staff's reservations over a period, in time order."""
    if to_http and to_kafka:
        raise typer.BadParameter("give one of --to-http and --to-kafka", param_hint="--to-http/--to-kafka")
    streaming = bool(to_http or to_kafka)
    if streaming and out is not None:
        raise typer.BadParameter("--out writes JSON lines; it cannot be combined with streaming", param_hint="--out")
    if speed is not None and not streaming:
        raise typer.BadParameter("--speed paces streaming; add --to-http or --to-kafka", param_hint="--speed")
    if tokens_file is not None and not to_http:
        raise typer.BadParameter("--tokens-file is for --to-http", param_hint="--tokens-file")
    try:
        config = GeneratorConfig(
            seed=seed,
            start_year=start_year,
            years=years,
            cases_per_year=cases_per_year,
            error_share=error_share,
            late_share=late_share,
            correction_share=correction_share,
            reservation_share=reservation_share,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    items = generator.generate(config)

    if not streaming:
        _write(items, out or "-")
        return
    if config.period_end > datetime.now(UTC):
        _err.print(
            f"[yellow]warning:[/] the period runs to {config.period_end:%Y-%m-%d}: intake refuses what is made in the"
            " future, so choose an earlier --start-year for a clean run"
        )
    pace = Pace(config.period_start, config.period_end, speed) if speed is not None else None
    try:
        if to_http:
            tokens = _tokens(tokens_file, needs_staff=reservation_share > 0)
            send = functools.partial(post_http, items, to_http, tokens, concurrency=concurrency, pace=pace)
        else:
            send = functools.partial(produce_kafka, items, load_settings(KafkaSettings), pace=pace)
        with PeriodProgress(config.period_start, config.period_end, _err) as progress:
            report = asyncio.run(send(progress=progress))
    except (SettingsError, StreamError) as exc:
        _err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    _summary(report)


def stream_demo(platform: LocalPlatform, tokens: Mapping[str, str], seconds: float = 60.0) -> None:
    """`registry up --demo`: last year's synthetic reports through the running platform's intake, the whole
    year in `seconds`."""
    config = GeneratorConfig(start_year=datetime.now(UTC).year - 1, years=1)
    pace = Pace(config.period_start, config.period_end, seconds)
    intake = platform.service("intake").url
    try:
        with PeriodProgress(config.period_start, config.period_end, _err) as progress:
            report = asyncio.run(post_http(generator.generate(config), intake, tokens, pace=pace, progress=progress))
    except StreamError as exc:
        _err.print(f"[red]demo stopped:[/] {exc}")
        return
    _summary(report)


def _write(items: Iterator[Item], out: str) -> None:
    with contextlib.ExitStack() as stack:
        if out == "-":
            sink: BinaryIO = sys.stdout.buffer
        else:
            try:
                sink = stack.enter_context(Path(out).open("wb"))
            except OSError as exc:
                raise typer.BadParameter(f"cannot write {out}: {exc.strerror}", param_hint="--out") from None
        try:
            sink.writelines(item.to_json_line() for item in items)
            sink.flush()
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _tokens(path: Path | None, *, needs_staff: bool) -> dict[str, str]:
    if path is None:
        raise typer.BadParameter("--to-http needs --tokens-file", param_hint="--tokens-file")
    try:
        tokens = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--tokens-file") from None
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{path} is not JSON: {exc}", param_hint="--tokens-file") from None
    if not isinstance(tokens, dict) or not all(isinstance(v, str) and v for v in tokens.values()):
        raise typer.BadParameter(f"{path} must hold a JSON object of non-empty strings", param_hint="--tokens-file")
    missing = [key for key in (*BY_ID, *([STAFF] if needs_staff else [])) if key not in tokens]
    if missing:
        raise typer.BadParameter(f"{path} has no token for {', '.join(missing)}", param_hint="--tokens-file")
    return tokens


def _summary(report: StreamReport) -> None:
    table = Table("sent", "count")
    for status, count in sorted(report.statuses.items()):
        table.add_row(status, str(count))
    if report.skipped:
        table.add_row("reservation skipped (HTTP only)", str(report.skipped))
    _err.print(table)
