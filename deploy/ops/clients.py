"""Short-lived Kafka clients for operator commands, and reading a topic from its start to its end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from deploy.ops import OpsError
from shared.settings import KafkaSettings

CLIENT_ID = "registry-ops"
# A read that makes no progress this long is reported instead of waiting forever (broker gone, ACLs).
STALL_TIMEOUT_S = 30.0

Progress = Callable[[int, int], None]
"""Called with (records read, records to read) while a topic is read."""


@asynccontextmanager
async def admin_client(settings: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id=CLIENT_ID)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


@asynccontextmanager
async def consumer(settings: KafkaSettings, group_id: str | None = None) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer that never subscribes or auto-commits: it is assigned partitions explicitly. With a
    `group_id` it can commit offsets for that group, which the broker allows only while it has no members."""
    client = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=CLIENT_ID,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await client.start()
    # Let the consumer's background task take its first step: cancelled before it, as `stop` does when the
    # block fails at once, it makes `stop` raise CancelledError instead of the block's own error.
    await asyncio.sleep(0)
    try:
        yield client
    finally:
        await client.stop()


@asynccontextmanager
async def producer(settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """acks=all and idempotence, as every platform producer."""
    client = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=CLIENT_ID,
        acks="all",
        enable_idempotence=True,
        compression_type=settings.compression,
    )
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def topic_partitions(admin: AIOKafkaAdminClient, topics: Iterable[str]) -> dict[str, list[TopicPartition]]:
    """The partitions of each of `topics` that exists."""
    wanted = list(dict.fromkeys(topics))
    found: dict[str, list[TopicPartition]] = {}
    for entry in await admin.describe_topics(wanted) if wanted else []:
        if not entry["error_code"]:
            numbers = sorted(p["partition"] for p in entry["partitions"])
            found[entry["topic"]] = [TopicPartition(entry["topic"], n) for n in numbers]
    return found


async def partitions_of(settings: KafkaSettings, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of `topics`, which must exist."""
    wanted = list(dict.fromkeys(topics))
    async with admin_client(settings) as admin:
        found = await topic_partitions(admin, wanted)
    if missing := [topic for topic in wanted if topic not in found]:
        raise OpsError(f"{', '.join(missing)} does not exist (create the platform's topics: registry topics create)")
    return [tp for topic in wanted for tp in found[topic]]


async def read_to_end(
    settings: KafkaSettings, topics: Iterable[str], on_progress: Progress | None = None
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topics` from the log start to the end offsets taken when the read began (records
    written meanwhile are left for the next read), in partition and offset order."""
    partitions = await partitions_of(settings, topics)
    async with consumer(settings) as client:
        start = await client.beginning_offsets(partitions)
        end = await client.end_offsets(partitions)
        pending = {tp for tp in partitions if start[tp] < end[tp]}
        total = sum(end[tp] - start[tp] for tp in partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        if on_progress:
            on_progress(0, total)
        if not pending:
            return records
        assigned = sorted(pending)
        client.assign(assigned)
        for tp in assigned:
            client.seek(tp, start[tp])
        loop = asyncio.get_running_loop()
        last_progress = loop.time()
        while pending:
            batches = await client.getmany(*pending, timeout_ms=500)
            for tp, batch in batches.items():
                records.extend(record for record in batch if record.offset < end[tp])
            # Compaction and transaction markers leave gaps: the position, not a count, says "done".
            positions = {tp: min(await client.position(tp), end[tp]) for tp in assigned}
            done = {tp for tp in pending if positions[tp] >= end[tp]}
            if batches or done:
                last_progress = loop.time()
            elif loop.time() - last_progress > STALL_TIMEOUT_S:
                stalled = ", ".join(sorted({tp.topic for tp in pending}))
                raise OpsError(f"reading {stalled} made no progress for {STALL_TIMEOUT_S:.0f} s; is the broker up?")
            pending -= done
            client.pause(*done)
            if on_progress:
                on_progress(sum(positions[tp] - start[tp] for tp in assigned), total)
        records.sort(key=lambda record: (record.topic, record.partition, record.offset))
        return records


async def read_at(client: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> ConsumerRecord[bytes, bytes] | None:
    """The record at `offset`, or None when there is none (before the log start, past the end, compacted
    away, or a transaction marker)."""
    start = (await client.beginning_offsets([tp]))[tp]
    end = (await client.end_offsets([tp]))[tp]
    if not start <= offset < end:
        return None
    client.assign([tp])
    client.seek(tp, offset)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STALL_TIMEOUT_S
    while loop.time() < deadline:
        for record in (await client.getmany(tp, timeout_ms=500)).get(tp, []):
            return record if record.offset == offset else None
        if await client.position(tp) > offset:
            return None
    raise OpsError(f"reading {tp.topic} partition {tp.partition} made no progress for {STALL_TIMEOUT_S:.0f} s")
