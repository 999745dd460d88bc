"""The runs with the services as processes (`deploy.local.platform.LocalPlatform`), each on a database of
its own on the benchmark's PostgreSQL server: HTTP intake alone, end to end, and validation scaled out.
Peak resident memory of every process is sampled throughout (psutil)."""

from __future__ import annotations

import asyncio
import functools
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from deploy.bench import events
from deploy.bench.infra import Infra, MemoryWatch, cpu_seconds, end_offsets, produce, wait_drained
from deploy.bench.loadgen import LoadResult, Request, closed_loop, open_loop
from deploy.local.kafka import pick_free_ports
from deploy.local.platform import LocalPlatform, ServiceProcess
from deploy.synthetic import Item
from shared.settings import KafkaSettings
from shared.topics import (
    HOSPITAL_INBOUND,
    STATS_SNAPSHOTS,
    SUBMISSIONS_RECEIVED,
    SUBMISSIONS_REJECTED,
    SUBMISSIONS_VALIDATED,
    TopicSpec,
)

HOST = "127.0.0.1"


def submission_requests(items: Iterable[Item], tokens: dict[str, str], port: int) -> Iterator[Request]:
    for item in items:
        yield Request.post(f"{HOST}:{port}", "/v1/submissions", tokens[item.hospital_id], orjson.dumps(item.payload))


@dataclass
class Platform:
    """Some of the services, as processes, on the benchmark's broker and PostgreSQL."""

    infra: Infra
    var: Path
    prefix: str
    names: Sequence[str]
    memory: MemoryWatch
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ports = pick_free_ports(len(self.names))
        self.services = tuple(ServiceProcess(name, port) for name, port in zip(self.names, ports, strict=True))
        env = {"LOG_LEVEL": "WARNING", **self.env}
        for name in self.names:
            variable = f"{name.upper()}_DATABASE_URL"
            if variable not in env:
                env[variable] = self.infra.database(f"bench_{self.var.name}_{name}".replace("-", "_"))
        if "export" in self.names:
            env["EXPORT_SINK_DATABASE_URL"] = self.infra.database(f"bench_{self.var.name}_nordic".replace("-", "_"))
        self.urls = {name: env[f"{name.upper()}_DATABASE_URL"] for name in self.names}
        self.local = LocalPlatform(
            self.var, self.infra.bootstrap, services=self.services, topic_prefix=self.prefix, extra_env=env
        )
        self.tokens = self.local.demo_tokens()

    def url(self, name: str) -> str:
        return self.urls[name]

    def port(self, name: str) -> int:
        return self.local.service(name).port

    def start(self) -> None:
        for service in self.services:
            self.local.start_service(service)
        for service in self.services:
            self.local.wait_ready(service, timeout=120)
            pid = self.local.pid(service)
            assert pid is not None
            self.memory.watch(service.name, pid)

    def pids(self) -> list[int]:
        return [pid for s in self.services if (pid := self.local.pid(s)) is not None]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def cpu_by_service(self) -> dict[str, float]:
        return {s.name: cpu_seconds(pid) for s in self.services if (pid := self.local.pid(s)) is not None}

    def stop(self) -> None:
        for service in reversed(self.services):
            self.local.stop_service(service)


# --- HTTP intake alone ---------------------------------------------------------------------------------


async def http_alone(
    infra: Infra, work: Path, memory: MemoryWatch, seconds: float, paced_seconds: float
) -> dict[str, Any]:
    platform = Platform(infra, work / "http", "bench-http.", ["intake"], memory)
    platform.start()
    try:
        port = platform.port("intake")
        pool = list(events.items(int(3000 * seconds) + int(500 * paced_seconds) + 1000, seed=5))
        closed_items, paced_items = pool[: -int(500 * paced_seconds)], pool[-int(500 * paced_seconds) :]
        # Warm up (first requests compile queries, fill pools), then the closed loop at full speed.
        warm = await closed_loop(
            HOST, port, submission_requests(closed_items[:300], platform.tokens, port), connections=8, seconds=10
        )
        cpu = platform.cpu()
        closed = await closed_loop(
            HOST, port, submission_requests(closed_items[300:], platform.tokens, port), connections=32, seconds=seconds
        )
        closed_cpu = platform.cpu() - cpu
        cpu = platform.cpu()
        paced = await open_loop(HOST, port, list(submission_requests(paced_items, platform.tokens, port)), rate=500)
        paced_cpu = platform.cpu() - cpu
    finally:
        platform.stop()
    return {
        "warm_up": warm.sent,
        "max": {**closed.as_dict(), "server_cpu_ms_per_request": round(1000 * closed_cpu / max(closed.sent, 1), 3)},
        "at_500_per_s": {
            **paced.as_dict(),
            "server_cpu_ms_per_request": round(1000 * paced_cpu / max(paced.sent, 1), 3),
        },
    }


# --- end to end -----------------------------------------------------------------------------------------


class _TopicWatch:
    """Reads topics from their beginning in a task of its own, handing each record to `_seen`."""

    def __init__(self, settings: KafkaSettings, *specs: TopicSpec) -> None:
        self.settings = settings
        self._topics = [settings.topic(spec) for spec in specs]
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            *self._topics,
            bootstrap_servers=self.settings.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for record in self._consumer:
            self._seen(record)

    def _seen(self, record: ConsumerRecord[bytes, bytes]) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop reading (once; stopping again does nothing)."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            await self._consumer.stop()


class SnapshotWatch(_TopicWatch):
    """Follows the registry-wide snapshots: how many submissions stats has decided (accepted + rejected),
    and when each count was first seen."""

    def __init__(self, settings: KafkaSettings) -> None:
        super().__init__(settings, STATS_SNAPSHOTS)
        self.seen: list[tuple[float, int]] = []  # (when, decided), as counts rise

    @property
    def decided(self) -> int:
        return self.seen[-1][1] if self.seen else 0

    def _seen(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key != b"registry" or record.value is None:
            return
        figures = orjson.loads(record.value)["total"]["submissions"]
        decided = sum(c["accepted"] + c["rejected"] for c in figures.values())
        if decided > self.decided:
            self.seen.append((time.perf_counter(), decided))

    def first_at_least(self, count: int) -> float | None:
        for when, decided in self.seen:
            if decided >= count:
                return when
        return None

    async def wait_for(self, count: int, *, quiet_s: float, timeout_s: float) -> float:
        """When the count reached `count` (or stopped rising for `quiet_s`); the time of the last rise."""
        deadline = time.perf_counter() + timeout_s
        while self.decided < count:
            last = self.seen[-1][0] if self.seen else time.perf_counter()
            if time.perf_counter() - last > quiet_s or time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.02)
        return self.seen[-1][0] if self.seen else time.perf_counter()


class StageWatch(_TopicWatch):
    """When submissions reached `submissions.received` (intake's relay published them) and when validation
    published its decisions: the records' timestamps (set by their producers), on this process's
    perf_counter timeline like everything else the benchmark times."""

    def __init__(self, settings: KafkaSettings) -> None:
        super().__init__(settings, SUBMISSIONS_RECEIVED, SUBMISSIONS_VALIDATED, SUBMISSIONS_REJECTED)
        self.received: list[float] = []
        self.decided: list[float] = []
        self._received_topic = settings.topic(SUBMISSIONS_RECEIVED)
        self._epoch = time.time() - time.perf_counter()  # wall clock minus perf_counter

    def _seen(self, record: ConsumerRecord[bytes, bytes]) -> None:
        when = record.timestamp / 1000 - self._epoch
        (self.received if record.topic == self._received_topic else self.decided).append(when)

    def since(self, start: float) -> tuple[list[float], list[float]]:
        """The times each stage was reached after `start`, in order."""
        return sorted(t for t in self.received if t >= start), sorted(t for t in self.decided if t >= start)


def _stage_percentiles(stages: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        name: {
            "p50_ms": round(1000 * LoadResult(latencies=times).percentile(50), 1),
            "p99_ms": round(1000 * LoadResult(latencies=times).percentile(99), 1),
        }
        for name, times in stages.items()
    }


async def _fetch_count(url: str, query: str) -> int:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return int(await connection.fetchval(query))
    finally:
        await connection.close()


@dataclass
class LedgerWatch:
    """Polls export's ledger through a burst: when it last had operations waiting for the Nordic sink."""

    url: str
    poll_s: float = 0.1
    last_busy: float = 0.0
    sent: int = 0
    _task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        connection = await asyncpg.connect(self.url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            while True:
                waiting = await connection.fetchval(
                    "select count(*) from ledger where status in ('pending', 'sending')"
                )
                if waiting:
                    self.last_busy = time.perf_counter()
                self.sent = int(await connection.fetchval("select count(*) from ledger where status = 'sent'"))
                await asyncio.sleep(self.poll_s)
        finally:
            await connection.close()

    def start(self) -> None:
        self.last_busy = time.perf_counter()
        self._task = asyncio.create_task(self._poll())

    async def done_at(self, timeout_s: float) -> float:
        """Once nothing waits: when the ledger was last seen busy (within one poll of emptying)."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() - self.last_busy < 3 * self.poll_s and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(self.poll_s)
        return self.last_busy + self.poll_s

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def _paced_to_stats(
    watch: SnapshotWatch, stages: StageWatch, port: int, tokens: dict[str, str], items: Sequence[Item], rate: float
) -> dict[str, Any]:
    base = watch.decided
    start = time.perf_counter()
    paced = await open_loop(HOST, port, list(submission_requests(items, tokens, port)), rate=rate)
    accepted_due = sorted(due for _, due, _, status in paced.timeline if status == 202)
    await watch.wait_for(base + len(accepted_due), quiet_s=10, timeout_s=120)
    received, decided = stages.since(start)
    latencies = []
    # The k-th submission sent is taken to be the k-th to reach each stage: the stages' shares then add
    # up to each submission's latency (an order statistic, as the latency itself is).
    by_stage: dict[str, list[float]] = {"intake": [], "validation": [], "stats": []}
    for k, due in enumerate(accepted_due, start=1):
        reflected = watch.first_at_least(base + k)
        if reflected is None:
            continue
        latencies.append(reflected - due)
        if k <= min(len(received), len(decided)):
            by_stage["intake"].append(received[k - 1] - due)
            by_stage["validation"].append(decided[k - 1] - received[k - 1])
            by_stage["stats"].append(reflected - decided[k - 1])
    lat = LoadResult(latencies=latencies)
    return {
        "http": paced.as_dict(),
        "reflected": len(latencies),
        "of": len(accepted_due),
        "to_stats_p50_ms": round(1000 * lat.percentile(50), 1),
        "to_stats_p99_ms": round(1000 * lat.percentile(99), 1),
        # intake: HTTP request to its event on submissions.received (group commit, outbox relay);
        # validation: to its decision on validated/rejected; stats: to the registry snapshot counting it.
        "stages": _stage_percentiles(by_stage),
    }


def _by_child(item: Item) -> int:
    return zlib.crc32(str(item.payload["patient"]["national_id"]).encode()) % 10


async def end_to_end(
    infra: Infra, work: Path, memory: MemoryWatch, submissions: int, paced_seconds: float
) -> dict[str, Any]:
    prefix = "bench-e2e."
    platform = Platform(
        infra,
        work / "e2e",
        prefix,
        ["intake", "validation", "stats", "export"],
        memory,
        {"STATS_SNAPSHOT_INTERVAL_S": "0.05", "EXPORT_POLL_INTERVAL_S": "1"},
    )
    platform.start()
    kafka = KafkaSettings(bootstrap_servers=infra.bootstrap, topic_prefix=prefix)
    watch, stages = SnapshotWatch(kafka), StageWatch(kafka)
    await watch.start()
    await stages.start()
    result: dict[str, Any] = {"snapshot_interval_s": 0.05}
    try:
        port = platform.port("intake")
        # 1. Latency: a steady rate over HTTP; submission k (in the order sent) is reflected when the
        #    registry snapshot first counts k decided submissions more than before. At 200/s first, below
        #    what the platform sustains here (the pipeline's own latency, no queue), then at 500/s (the
        #    target).
        # One stream for all parts (tumour references are the hospitals' own numbering: two streams would
        # reuse them for other children), from 2019 on, so NOPHO-Care export has work.
        rates = (200, 500)
        counts = [int(rate * paced_seconds) for rate in rates]
        stream = list(events.items(sum(counts) + submissions, seed=7, start_year=2019, years=7))
        intake = events._Intake()
        start = 0
        for rate, count in zip(rates, counts, strict=True):
            paced_items = stream[start : start + count]
            start += count
            for item in paced_items:
                intake.received(item)
            result[f"at_{rate}_per_s"] = await _paced_to_stats(watch, stages, port, platform.tokens, paced_items, rate)
        await stages.stop()  # not reading every record of the burst on the cores the services share
        burst = stream[start:]

        # 2. Throughput: a burst, nine children in ten through the inbound topic, the rest over HTTP.
        over_http = [item for item in burst if _by_child(item) == 0]
        inbound = [item for item in burst if _by_child(item) != 0]
        expected = sum(1 for item in burst if intake.received(item) is not None)
        base = watch.decided
        registered_before = await _fetch_count(platform.url("intake"), "select count(*) from submissions")
        ledger = LedgerWatch(platform.url("export"))
        cpu = platform.cpu()
        cpu_by_service = platform.cpu_by_service()
        started = time.perf_counter()
        ledger.start()
        records = (
            (HOSPITAL_INBOUND, item.hospital_id.encode(), orjson.dumps(item.payload), item.hospital_id.encode())
            for item in inbound
        )
        produced, http = await asyncio.gather(
            _produce_inbound(kafka, records),
            closed_loop(
                HOST, port, submission_requests(over_http, platform.tokens, port), connections=16, seconds=3600
            ),
        )
        # What intake registered (a correction that overtook its original over the other channel is
        # refused, so the stream's own count can be a few too many) is what stats must decide.
        inbound_ends = await end_offsets(kafka.bootstrap_servers, [kafka.topic(HOSPITAL_INBOUND)])
        await wait_drained(kafka.bootstrap_servers, "intake-inbound", inbound_ends, timeout_s=1800)
        registered = await _fetch_count(platform.url("intake"), "select count(*) from submissions") - registered_before
        stats_done = await watch.wait_for(base + registered, quiet_s=20, timeout_s=1800)
        export_ends = await end_offsets(kafka.bootstrap_servers, [kafka.topic(SUBMISSIONS_VALIDATED)])
        await wait_drained(kafka.bootstrap_servers, "export", export_ends, timeout_s=1800)
        export_done = await ledger.done_at(timeout_s=600)
        await ledger.stop()
        seconds = max(stats_done, export_done) - started
        result["burst"] = {
            "submissions": len(burst),
            "inbound": produced,
            "http": http.as_dict(),
            "expected_decided": expected,
            "registered": registered,
            "decided": watch.decided - base,
            "stats_seconds": round(stats_done - started, 2),
            "export_seconds": round(export_done - started, 2),
            "nordic_sent": ledger.sent,
            "per_second": round(len(burst) / seconds, 1),
            "services_cpu_seconds": round(platform.cpu() - cpu, 1),
            "cpu_ms_per_submission": {
                name: round(1000 * (seconds - cpu_by_service.get(name, 0.0)) / len(burst), 3)
                for name, seconds in platform.cpu_by_service().items()
            },
        }
    finally:
        await watch.stop()
        await stages.stop()
        platform.stop()
    return result


async def _produce_inbound(kafka: KafkaSettings, records: Iterable[tuple[Any, bytes, bytes, bytes]]) -> int:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        compression_type="lz4",
    )
    await producer.start()
    count = 0
    try:
        pending = []
        for spec, key, value, hospital in records:
            pending.append(await producer.send(kafka.topic(spec), value, key=key, headers=[("hospital-id", hospital)]))
            count += 1
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


def _cpu_of(platforms: Sequence[Platform]) -> float:
    return sum(p.cpu() for p in platforms)


# --- scale-out ------------------------------------------------------------------------------------------


async def scale_out(infra: Infra, work: Path, memory: MemoryWatch, count: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for processes in (1, 2):
        prefix = f"bench-scale{processes}."
        kafka = KafkaSettings(bootstrap_servers=infra.bootstrap, topic_prefix=prefix)
        from shared.kafka.admin import ensure_topics

        await ensure_topics(kafka)
        database = infra.database(f"bench_scale{processes}")
        platforms = [
            Platform(
                infra,
                work / f"scale{processes}-{n}",
                prefix,
                ["validation"],
                memory,
                {"VALIDATION_DATABASE_URL": database},
            )
            for n in range(processes)
        ]
        for platform in platforms:
            platform.start()
        try:
            # Started on an empty topic (the group has settled), then filled faster than it drains; the
            # watch runs from before the first record.
            await asyncio.sleep(3)
            records = list(events.received_stream(count, receipts=False))
            partitions = await end_offsets(infra.bootstrap, [kafka.topic(SUBMISSIONS_RECEIVED)])
            watch = asyncio.create_task(
                wait_drained(
                    infra.bootstrap,
                    "validation",
                    partitions,
                    timeout_s=1800,
                    cpu=functools.partial(_cpu_of, platforms),
                    total=len(records),
                )
            )
            await produce(kafka, records)
            drain = await watch
        finally:
            for platform in platforms:
                platform.stop()
        result[f"{processes}_process"] = {
            "messages": drain.messages,
            "seconds": round(drain.seconds, 2),
            "per_second": round(drain.per_second, 1),
            "cpu_us_per_message": round(1e6 * drain.cpu_seconds / max(drain.messages, 1), 1),
        }
    one, two = result["1_process"]["per_second"], result["2_process"]["per_second"]
    result["speed_up"] = round(two / one, 2) if one else 0.0
    return result
