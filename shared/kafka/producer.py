"""Publishing many events at once, each acknowledged by the broker (acks=all), at batch speed.

Sending every record first and awaiting the acknowledgements afterwards lets the producer pack them into
few requests: about ten times the throughput of awaiting each send, with the same guarantee.

Records go straight to the broker's aiokafka producer (the platform's acks=all, idempotent producer that
FastStream started): FastStream's own `publish` builds a command, runs the middlewares and encodes the
body for every record, which cost about five times the send itself (`deploy/bench`, docs/benchmarks.md).
FastStream's in-memory test broker, and a broker not connected yet, are published to through FastStream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from shared.events import Event

JSON_HEADERS = {"content-type": "application/json"}
_RAW_HEADERS = [(name, value.encode()) for name, value in JSON_HEADERS.items()]


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: str | bytes
    event: Event

    @property
    def key_bytes(self) -> bytes:
        return self.key if isinstance(self.key, bytes) else self.key.encode()


def aiokafka_producer(broker: KafkaBroker) -> AIOKafkaProducer | None:
    """The started aiokafka producer behind `broker`, if it has one."""
    state: Any = getattr(getattr(getattr(broker, "config", None), "producer", None), "_producer", None)
    if not state:  # FastStream's EmptyProducerState is falsy: not connected (yet)
        return None
    producer = getattr(state, "producer", None)
    return producer if isinstance(producer, AIOKafkaProducer) else None


async def publish_all(broker: KafkaBroker, messages: Iterable[Outgoing]) -> None:
    """Return once every message is acknowledged; raise if any send failed."""
    pending = []
    producer = aiokafka_producer(broker)
    if producer is not None:
        for message in messages:
            pending.append(
                await producer.send(message.topic, message.event.to_json(), key=message.key_bytes, headers=_RAW_HEADERS)
            )
    else:
        for message in messages:
            future = await broker.publish(
                message.event.to_json(), message.topic, key=message.key_bytes, headers=JSON_HEADERS, no_confirm=True
            )
            if future is not None:  # FastStream's in-memory test broker delivers synchronously
                pending.append(future)
    if pending:
        await asyncio.gather(*pending)
