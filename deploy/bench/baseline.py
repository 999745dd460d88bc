"""The yardstick: the raw aiokafka client producing and consuming the same submission events, decoded with
pydantic (strict, as the services decode them), with no framework and no database. Offsets are committed
after every fetched batch, as a consumer with at-least-once delivery would."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.events import SubmissionReceived
from shared.settings import KafkaSettings
from shared.topics import SUBMISSIONS_RECEIVED


@dataclass
class Rate:
    messages: int
    seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds

    @property
    def cpu_us_per_message(self) -> float:
        return 1e6 * self.cpu_seconds / self.messages

    def as_dict(self) -> dict[str, float]:
        return {
            "messages": self.messages,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.per_second, 1),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "cpu_us_per_message": round(self.cpu_us_per_message, 1),
        }


async def produce_raw(settings: KafkaSettings, values: Sequence[tuple[bytes, bytes]]) -> Rate:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        compression_type=settings.compression,
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    topic = settings.topic(SUBMISSIONS_RECEIVED)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        pending = []
        for key, value in values:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return Rate(len(values), time.perf_counter() - wall, time.process_time() - cpu)
    finally:
        await producer.stop()


async def consume_raw(settings: KafkaSettings, expected: int) -> Rate:
    consumer = AIOKafkaConsumer(
        settings.topic(SUBMISSIONS_RECEIVED),
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"bench-baseline-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        decode = SubmissionReceived.from_json
        seen = 0
        wall = cpu = 0.0
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            if not batches:
                continue
            if not wall:  # from the first fetch on: group joining is left out, as for the services
                wall, cpu = time.perf_counter(), time.process_time()
            for records in batches.values():
                for record in records:
                    decode(record.value)
                seen += len(records)
            await consumer.commit()
        return Rate(seen, time.perf_counter() - wall, time.process_time() - cpu)
    finally:
        await consumer.stop()
