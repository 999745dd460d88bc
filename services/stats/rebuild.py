"""`registry stats rebuild`: empty the projection and replay the input topics from their beginning.

A fresh, group-less consumer reads every partition of the three input topics up to the end offsets they
had when the rebuild started, and hands large batches to the same application code the service runs
(processed ids included, so a later live consumer skips what the replay applied). Reminders are not
re-announced while replaying: afterwards only those whose state differs from before are published, and
every scope gets a fresh snapshot. Run it with the stats service stopped.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.stats import storage
from services.stats.app import MIGRATIONS
from services.stats.application import Clock, StatsApplication, SystemClock
from services.stats.domain.projection import InputEvent
from services.stats.handlers import INPUT_TOPICS
from services.stats.settings import StatsSettings
from shared.db import create_engine, session_factory
from shared.db.migrations import upgrade
from shared.events.stats import REGISTRY_SCOPE, Figures
from shared.kafka import create_broker, publish_all
from shared.kafka.codec import decoder_for
from shared.kafka.consumer import UNDECODABLE_ERRORS
from shared.settings import KafkaSettings
from shared.topics import TopicSpec

Progress = Callable[[int, int], None]  # (records read so far, records to read in all)


@dataclass
class RebuildReport:
    records: int = 0
    applied: int = 0
    duplicates: int = 0
    undecodable: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)  # applied events by type
    reminders_announced: int = 0
    snapshots_published: int = 0
    registry: Figures | None = None  # the registry-wide figures rebuilt
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Batch:
    events: list[InputEvent]
    records: int  # read, including undecodable ones
    undecodable: int
    total: int  # records to read in all


async def read_from_beginning(
    settings: KafkaSettings, specs: Sequence[TopicSpec], partitions: list[TopicPartition], batch_size: int
) -> AsyncIterator[Batch]:
    """Every record of the topics up to the end offsets at the start, decoded, in batches; per-partition
    order is kept (events of one child stay in order)."""
    decoders = {settings.topic(spec): decoder_for(spec) for spec in specs}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="stats-rebuild",
        group_id=None,  # no group: nothing is committed, the service's offsets are left alone
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        start = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        for tp in partitions:  # explicit offsets: a lazy seek_to_beginning can lose to the offset reset
            consumer.seek(tp, start[tp])
        remaining = {tp for tp in partitions if end[tp] > start[tp]}
        total = sum(end[tp] - start[tp] for tp in partitions)
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=500, max_records=batch_size)
            batch = Batch([], 0, 0, total)
            for tp, records in fetched.items():
                decode = decoders[tp.topic]
                for record in records:
                    if record.offset >= end[tp]:
                        break  # arrived after the rebuild started: the live consumer's
                    batch.records += 1
                    try:
                        batch.events.append(decode(record.value))
                    except UNDECODABLE_ERRORS:
                        batch.undecodable += 1  # the live consumer dead-lettered it; so does the replay
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            if batch.records:
                yield batch
    finally:
        await consumer.stop()


async def partitions_of(settings: KafkaSettings, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of the topics, as the cluster describes them (a consumer's cached metadata may not
    know a topic it has not subscribed to yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="stats-rebuild")
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    missing = sorted(d["topic"] for d in described if d["error_code"] != 0)
    if missing:
        raise RuntimeError(f"topics not found: {', '.join(missing)}")
    return sorted(TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"])


async def _read_into(
    queue: asyncio.Queue[Batch | None], settings: KafkaSettings, partitions: list[TopicPartition], batch_size: int
) -> None:
    try:
        async for batch in read_from_beginning(settings, INPUT_TOPICS, partitions, batch_size):
            await queue.put(batch)
    finally:
        # The end marker, after an error too (the applier then awaits this task and gets the error);
        # a cancelled reader's applier has gone and waits for nothing.
        task = asyncio.current_task()
        if task is None or not task.cancelling():
            await queue.put(None)


@contextmanager
def _bulk_gc() -> Iterator[None]:
    """A replay allocates millions of short-lived objects: collect the young generation less often."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


async def rebuild(
    settings: StatsSettings,
    *,
    batch_size: int = 10_000,
    clock: Clock | None = None,
    progress: Progress | None = None,
) -> RebuildReport:
    started = time.perf_counter()
    report = RebuildReport()
    # Before anything is emptied: a cluster without the input topics must not cost the projection.
    partitions = await partitions_of(settings.kafka, [settings.kafka.topic(spec) for spec in INPUT_TOPICS])
    engine = storage.with_page_cache(create_engine(settings.database_url))
    broker = create_broker(settings.kafka, client_id="stats-rebuild")
    try:
        await upgrade(engine, MIGRATIONS)
        await broker.connect()
        stats = StatsApplication(
            session_factory(engine), settings, clock or SystemClock(), partial(publish_all, broker)
        )
        before = await stats.reset()
        with _bulk_gc():
            # Reading and decoding the next batch overlaps with the database writing the current one.
            batches: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=2)
            reader = asyncio.create_task(_read_into(batches, settings.kafka, partitions, batch_size))
            try:
                while (batch := await batches.get()) is not None:
                    result = await stats.apply(batch.events, announce=False)
                    report.records += batch.records
                    report.undecodable += batch.undecodable
                    report.applied += len(result.applied)
                    report.duplicates += result.duplicates
                    report.by_topic.update(applied.event_type for applied in result.applied)
                    if progress is not None:
                        progress(report.records, batch.total)
                await reader  # its error, if it failed
            finally:
                reader.cancel()
            await stats.sweep(announce=False)
        report.reminders_announced = len(await stats.announce_rebuilt(before))
        snapshots = await stats.flush()
        report.snapshots_published = len(snapshots)
        report.registry = next((s.total for s in snapshots if s.scope == REGISTRY_SCOPE), None)
        async with stats.sessions() as session:
            report.rows = await storage.count_rows(session)
    finally:
        await broker.stop()
        await engine.dispose()
    report.seconds = time.perf_counter() - started
    return report
