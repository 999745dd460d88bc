"""`publish_all` on a real broker: each record in the partition the default partitioner picks for its key
(as every other producer of the platform, Java's included, puts it), in order, with its headers, all
acknowledged when it returns; a record or batch the producer or the broker refuses is an error."""

from __future__ import annotations

import base64
import os
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from shared.events import DeadLetter, ReservationRegistered
from shared.events.base import utcnow
from shared.kafka import Outgoing, create_broker, publish_all
from shared.settings import KafkaSettings
from shared.topics import RECEIPTS, SUBMISSIONS_RECEIVED, TopicSpec

pytestmark = pytest.mark.kafka

Record = tuple[int, bytes, bytes, list[tuple[str, bytes]]]  # partition, key, value, headers


def reservation(n: int, child: str) -> ReservationRegistered:
    return ReservationRegistered(
        reservation_id=uuid.UUID(int=n),
        child_pseudonym=child,
        recorded_by="coder.anna",
        effective_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


def child(n: int) -> str:
    return base64.b32encode(n.to_bytes(20, "big")).decode().lower()


def dead_letter(value_bytes: int) -> DeadLetter:
    return DeadLetter(
        producer="export",
        source_topic="t",
        partition=0,
        offset=0,
        consumer_group="export",
        key_b64=None,
        value_b64=base64.b64encode(os.urandom(value_bytes)).decode(),  # random: compression does not shrink it
        value_encoding="base64",
        error_type="ValueError",
        error="too large",
        attempts=1,
        failed_at=utcnow(),
    )


async def published(settings: KafkaSettings, specs: Sequence[TopicSpec]) -> dict[str, list[Record]]:
    """Every record on the topics of `specs`, in each partition's order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(settings.topic(spec), p) for spec in specs for p in range(spec.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        records: dict[str, list[Record]] = defaultdict(list)
        remaining = sum(ends.values())  # the topics are new: every partition starts at offset 0
        while remaining:
            for tp, batch in (await consumer.getmany(timeout_ms=1000)).items():
                records[tp.topic] += [(tp.partition, r.key, r.value, list(r.headers)) for r in batch]
                remaining -= len(batch)
        return records
    finally:
        await consumer.stop()


async def test_records_land_where_the_default_partitioner_puts_their_keys_in_order_all_acknowledged(
    kafka_settings: KafkaSettings,
) -> None:
    clinical, receipts = kafka_settings.topic(SUBMISSIONS_RECEIVED), kafka_settings.topic(RECEIPTS)
    # Forty children, and one with enough records (~400 KiB) to fill more than one batch of its partition.
    keys = [child(n % 40) for n in range(1200)] + [child(99)] * 1500
    messages = [Outgoing(clinical, key, reservation(n, key)) for n, key in enumerate(keys)]
    messages += [Outgoing(receipts, f"hospital-{n % 7}", reservation(10_000 + n, child(n))) for n in range(300)]
    broker = create_broker(kafka_settings, "test-publisher")
    async with broker:
        await publish_all(broker, messages)

    records = await published(kafka_settings, [SUBMISSIONS_RECEIVED, RECEIPTS])
    partitioner = DefaultPartitioner()
    for topic, count in ((clinical, SUBMISSIONS_RECEIVED.partitions), (receipts, RECEIPTS.partitions)):
        sent = [m for m in messages if m.topic == topic]
        assert len(records[topic]) == len(sent)  # acknowledged before publish_all returned: all there now
        by_key: dict[bytes, list[tuple[int, bytes]]] = defaultdict(list)
        for partition, key, value, headers in records[topic]:
            assert partition == partitioner(key, list(range(count)), list(range(count)))
            assert headers == [("content-type", b"application/json")]
            by_key[key].append((partition, value))
        for key in by_key:  # each key's records in the order they were given
            expected = [m.event.to_json() for m in sent if m.key_bytes == key]
            assert [value for _, value in by_key[key]] == expected
    assert len({p for p, *_ in records[clinical]}) > 1


async def test_a_record_over_the_request_size_is_refused_before_anything_of_it_is_sent(
    kafka_settings: KafkaSettings,
) -> None:
    topic = kafka_settings.topic(SUBMISSIONS_RECEIVED)
    broker = create_broker(kafka_settings, "test-publisher")
    async with broker:
        with pytest.raises(MessageSizeTooLargeError):
            await publish_all(broker, [Outgoing(topic, child(1), dead_letter(4 * 1024 * 1024))])
    assert not (await published(kafka_settings, [SUBMISSIONS_RECEIVED]))[topic]


async def test_a_batch_the_broker_refuses_fails_the_publishing(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topic(SUBMISSIONS_RECEIVED)  # max.message.bytes: the broker's default, 1 MB
    broker = create_broker(kafka_settings, "test-publisher")
    async with broker:
        with pytest.raises(KafkaError):
            await publish_all(broker, [Outgoing(topic, child(1), dead_letter(1024 * 1024))])
