"""`python -m deploy.bench [--quick]`: the platform's throughput and latency next to the raw Kafka client's.

One run starts a dedicated 1-node Kafka cluster and a PostgreSQL server (free ports, a temporary
directory), runs the sections below in order, prints a table and writes `var/bench/results-<time>.json`.
`python -m deploy.bench.report` turns the latest JSON into the table of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from deploy.bench import events, processes
from deploy.bench.baseline import consume_raw, produce_raw
from deploy.bench.consumers import drain_service
from deploy.bench.infra import Infra, MemoryWatch, machine, produce, running_infra
from shared.kafka.admin import ensure_topics
from shared.service import run_event_loop
from shared.settings import VAR_DIR, KafkaSettings
from shared.topics import SUBMISSIONS_RECEIVED

RESULTS_DIR = VAR_DIR / "bench"
SECTIONS = ("baseline", "consumers", "http", "e2e", "replay", "scaleout")
console = Console(stderr=True)


@dataclass(frozen=True)
class Sizes:
    consumer_events: int  # submissions each consumer service drains
    replay_submissions: int  # the replay reads a receipt and a decision per submission
    http_seconds: float  # closed-loop load on intake alone
    paced_seconds: float  # at 500 per second (HTTP alone, and end to end)
    e2e_submissions: int
    scaleout_events: int


QUICK = Sizes(20_000, 50_000, 8, 8, 5_000, 20_000)
FULL = Sizes(200_000, 500_000, 30, 30, 50_000, 200_000)


class Bench:
    def __init__(self, infra: Infra, sizes: Sizes, results: dict[str, Any], work: Path, max_batch: int | None) -> None:
        self.infra = infra
        self.sizes = sizes
        self.results = results
        self.work = work
        self.max_batch = max_batch
        self.memory = MemoryWatch()

    def kafka(self, prefix: str) -> KafkaSettings:
        settings = KafkaSettings(bootstrap_servers=self.infra.bootstrap, topic_prefix=prefix)
        return settings.model_copy(update={"max_batch": self.max_batch}) if self.max_batch else settings

    # --- 1. baseline -----------------------------------------------------------------------------------

    async def baseline(self) -> None:
        kafka = self.kafka(f"bench-raw-{uuid.uuid4().hex[:6]}.")
        await ensure_topics(kafka, [SUBMISSIONS_RECEIVED])
        values = [(k, v) for spec, k, v in _current_era(self.sizes.consumer_events, receipts=False)]
        produced = await produce_raw(kafka, values)
        consumed = await consume_raw(kafka, len(values))
        self.results["baseline"] = {
            "event_bytes_mean": round(sum(len(v) for _, v in values) / len(values)),
            "produce": produced.as_dict(),
            "consume": consumed.as_dict(),
        }

    # --- 2. each consumer service alone ----------------------------------------------------------------

    async def consumers(self) -> None:
        kafka = self.kafka(f"bench-svc-{uuid.uuid4().hex[:6]}.")
        await ensure_topics(kafka)
        # Validation's input: received submissions (their receipts go to stats' input topic alongside).
        counts = await produce(kafka, _current_era(self.sizes.consumer_events))
        section: dict[str, Any] = {"inputs": counts}
        self.results["consumers"] = section
        for service in ("validation", "stats", "export"):
            url = self.infra.database(f"bench_{service}")
            sink = self.infra.database("bench_nordic") if service == "export" else ""
            # Validation's output (decisions) is what stats and export drain next.
            result = await drain_service(service, kafka, url, sink)
            section[service] = result.as_dict()
            console.print(f"  {service}: {result.drain.messages:,} in {result.drain.seconds:.1f} s")

    # --- 3, 4, 6: the services as processes ---------------------------------------------------------------

    async def http(self) -> None:
        self.results["http_intake"] = await processes.http_alone(
            self.infra, self.work, self.memory, self.sizes.http_seconds, self.sizes.paced_seconds
        )

    async def e2e(self) -> None:
        self.results["end_to_end"] = await processes.end_to_end(
            self.infra, self.work, self.memory, self.sizes.e2e_submissions, self.sizes.paced_seconds
        )

    async def scaleout(self) -> None:
        self.results["scale_out"] = await processes.scale_out(
            self.infra, self.work, self.memory, self.sizes.scaleout_events
        )

    # --- 5. replay ---------------------------------------------------------------------------------------

    async def replay(self) -> None:
        from services.stats.rebuild import rebuild
        from services.stats.settings import StatsSettings

        kafka = self.kafka(f"bench-replay-{uuid.uuid4().hex[:6]}.")
        await ensure_topics(kafka)
        prepared = time.perf_counter()
        counts = await produce(kafka, events.outcome_stream(self.sizes.replay_submissions))
        section: dict[str, Any] = {
            "events": sum(counts.values()),
            "prepare_seconds": round(time.perf_counter() - prepared, 1),
        }
        self.results["replay"] = section
        for database in ("postgresql", "sqlite"):
            url = (
                self.infra.database("bench_replay")
                if database == "postgresql"
                else f"sqlite+aiosqlite:///{self.work / 'replay-stats.db'}"
            )
            settings = StatsSettings(database_url=url, kafka=kafka, log_json=False)
            cpu = time.process_time()
            report = await rebuild(settings)
            cpu = time.process_time() - cpu
            section[database] = {
                "records": report.records,
                "applied": report.applied,
                "seconds": round(report.seconds, 2),
                "per_second": round(report.records / report.seconds, 1),
                "cpu_us_per_event": round(1e6 * cpu / max(report.records, 1), 1),
            }
            console.print(f"  {database}: {report.records:,} in {report.seconds:.1f} s")


def _current_era(count: int, *, receipts: bool = True) -> Iterator[events.Record]:
    """The baseline's and the consumers' events: reports of the years NOPHO-Care takes (2019 on), so export
    builds, hashes and plans a transfer record for each, as in service (of a stream from 1986 it would
    only store reports too old to transfer)."""
    return events.received_stream(count, receipts=receipts, start_year=2019, years=7)


def _ratio(value: float, base: float) -> float:
    return round(value / base, 3) if base else 0.0


def git_commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return result.stdout.strip()


def add_ratios(results: dict[str, Any]) -> None:
    base = results.get("baseline", {}).get("consume", {}).get("per_second", 0.0)
    for _service, figures in results.get("consumers", {}).items():
        if isinstance(figures, dict) and "per_second" in figures:
            figures["ratio_to_baseline"] = _ratio(figures["per_second"], base)


async def run(sizes: Sizes, sections: list[str], max_batch: int | None, label: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results: dict[str, Any] = {
        "started_at": stamp,
        "label": label,
        "mode": "quick" if sizes is QUICK else "full",
        "git_commit": git_commit(),
        "machine": machine(),
        "sizes": sizes.__dict__,
    }
    work = RESULTS_DIR / f"work-{stamp}"
    started, cpu = time.perf_counter(), time.process_time()
    with running_infra(work) as infra:
        results["machine"]["kafka"] = infra.kafka_version
        results["machine"]["postgresql"] = infra.postgres_version
        bench = Bench(infra, sizes, results, work, max_batch)
        steps: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "baseline": bench.baseline,
            "consumers": bench.consumers,
            "http": bench.http,
            "e2e": bench.e2e,
            "replay": bench.replay,
            "scaleout": bench.scaleout,
        }
        bench.memory.__enter__()
        for name in sections:
            if name not in steps:
                continue
            console.print(f"[bold]{name}[/bold]")
            section_started = time.perf_counter()
            try:
                await steps[name]()
            except Exception as exc:  # a failed section is reported, the others still run
                console.print_exception()
                results.setdefault("errors", {})[name] = repr(exc)
            results.setdefault("section_seconds", {})[name] = round(time.perf_counter() - section_started, 1)
        bench.memory.__exit__()
        if bench.memory.peak_mib:
            results["memory_peak_mib"] = {k: round(v, 1) for k, v in sorted(bench.memory.peak_mib.items())}
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["bench_cpu_seconds"] = round(time.process_time() - cpu, 1)
    add_ratios(results)
    path = RESULTS_DIR / f"results-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, about two minutes")
    parser.add_argument("--only", help=f"comma-separated sections of {','.join(SECTIONS)}")
    parser.add_argument("--max-batch", type=int, help="KAFKA_MAX_BATCH for the services (default: theirs)")
    parser.add_argument("--label", default="", help="a note stored with the results (e.g. 'before')")
    args = parser.parse_args(argv)
    sections = args.only.split(",") if args.only else list(SECTIONS)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    # The event loop the services run on (uvloop), for the raw client as for them.
    path = run_event_loop(run(QUICK if args.quick else FULL, sections, args.max_batch, args.label))
    from deploy.bench.report import print_table

    print_table(json.loads(path.read_text()))
    console.print(f"results: {path}")
