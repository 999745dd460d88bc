"""The benchmark's real parts: a dedicated 1-node Kafka cluster and a PostgreSQL server, both on free ports
under a temporary directory, stopped at the end; and what the runs measure them with (producing a
pre-filled topic, a consumer group's committed offsets, processes' CPU time and resident memory)."""

from __future__ import annotations

import asyncio
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from deploy.local.kafka import KafkaCluster
from deploy.local.postgres import LocalPostgres, ensure_installed
from shared.settings import KafkaSettings
from shared.topics import TopicSpec


@dataclass
class Infra:
    bootstrap: str
    postgres: LocalPostgres
    kafka_version: str
    postgres_version: str

    def database(self, name: str) -> str:
        """A new, empty database on the benchmark's server; its asyncpg URL."""
        self.postgres.drop_database(name)
        self.postgres.create_database(name)
        return self.postgres.url(name)


@contextmanager
def running_infra(work: Path) -> Iterator[Infra]:
    ensure_installed()
    work.mkdir(parents=True, exist_ok=True)
    # The server runs as the postgres user when we are root: it needs a directory it may enter.
    pg_dir = Path(tempfile.mkdtemp(prefix="registry-bench-postgres-"))
    pg_dir.chmod(0o755)
    cluster = KafkaCluster("bench", 1, state_dir=work / "kafka", free_ports=True)
    postgres = LocalPostgres(pg_dir / "data", free_port=True, durable=True)  # fsync on: durable effects
    try:
        cluster.start()
        postgres.start()
        yield Infra(cluster.bootstrap_servers, postgres, _kafka_version(cluster), _postgres_version(postgres))
    finally:
        try:
            postgres.stop()
        finally:
            cluster.stop()
            shutil.rmtree(pg_dir, ignore_errors=True)
            shutil.rmtree(work / "kafka", ignore_errors=True)


def _kafka_version(cluster: KafkaCluster) -> str:
    jars = sorted(p.name for p in cluster.libs_dir.glob("kafka_*.jar"))
    for name in jars:  # kafka_2.13-4.1.1.jar
        if name.count("-") == 1:
            return name.rsplit("-", 1)[1].removesuffix(".jar")
    return "unknown"


def _postgres_version(postgres: LocalPostgres) -> str:
    command = [str(postgres.bindir / "postgres"), "--version"]  # postgres (PostgreSQL) 15.18 (Debian ...)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = re.search(r"\(PostgreSQL\) (\S+)", result.stdout)
    return found.group(1) if found else "unknown"


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# --- topics ------------------------------------------------------------------------------------------------


async def produce(settings: KafkaSettings, records: Iterable[tuple[TopicSpec, bytes, bytes]]) -> dict[str, int]:
    """Produce encoded records as fast as the broker takes them (acks=all); count them per topic."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        compression_type=settings.compression,
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    counts: dict[str, int] = {}
    try:
        pending = []
        for spec, key, value in records:
            topic = settings.topic(spec)
            pending.append(await producer.send(topic, value, key=key, headers=[("content-type", b"application/json")]))
            counts[spec.name] = counts.get(spec.name, 0) + 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return counts


async def end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    partitions = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def committed(admin: AIOKafkaAdminClient, group: str) -> dict[TopicPartition, int]:
    offsets = await admin.list_consumer_group_offsets(group)
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


@dataclass
class Drain:
    """How a consumer group drained its topics, from its committed offsets: the rate is taken between the
    first commit and the last, so start-up and group joining are left out."""

    messages: int
    seconds: float
    first_commit_at: float
    done_at: float
    cpu_seconds: float  # of the measured processes, over the same window

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


async def wait_drained(
    bootstrap: str,
    group: str,
    ends: dict[TopicPartition, int],
    *,
    timeout_s: float,
    poll_s: float = 0.05,
    cpu: Callable[[], float] = time.process_time,
    total: int | None = None,
) -> Drain:
    """Until `group` has committed every offset up to `ends`; or, with `total`, `total` offsets in all
    over the partitions of `ends` (for a topic still being filled)."""
    if total is None:
        total = sum(ends.values())
    else:
        ends = {tp: total for tp in ends}  # any partition may hold them all
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.perf_counter() + timeout_s
        first: tuple[float, int, float] | None = None
        while True:
            now = time.perf_counter()
            offsets = await committed(admin, group)
            done = sum(min(offsets.get(tp, 0), end) for tp, end in ends.items())
            if first is None and done > 0:
                first = (now, done, cpu())
            if done >= total:
                assert first is not None
                return Drain(total - first[1], now - first[0], first[0], now, cpu() - first[2])
            if now > deadline:
                raise TimeoutError(f"group {group} committed {done:,} of {total:,} offsets in {timeout_s:.0f} s")
            await asyncio.sleep(poll_s)
    finally:
        await admin.close()


# --- processes -------------------------------------------------------------------------------------------


@dataclass
class MemoryWatch:
    """Peak resident memory of processes, sampled in a thread (psutil)."""

    pids: dict[str, int] = field(default_factory=dict)
    peak_mib: dict[str, float] = field(default_factory=dict)
    interval_s: float = 0.2

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in list(self.pids.items()):
                try:
                    rss = psutil.Process(pid).memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peak_mib[name] = max(self.peak_mib.get(name, 0.0), rss)
            self._stop.wait(self.interval_s)


def cpu_seconds(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system
