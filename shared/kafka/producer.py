"""Publishing many events at once, each acknowledged by the broker (acks=all), at batch speed.

Sending every record first and awaiting the acknowledgements afterwards lets the producer pack them into
few requests: about ten times the throughput of awaiting each send, with the same guarantee.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from faststream.kafka import KafkaBroker

from shared.events import Event

JSON_HEADERS = {"content-type": "application/json"}


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: str | bytes
    event: Event

    @property
    def key_bytes(self) -> bytes:
        return self.key if isinstance(self.key, bytes) else self.key.encode()


async def publish_all(broker: KafkaBroker, messages: Iterable[Outgoing]) -> None:
    """Return once every message is acknowledged; raise if any send failed."""
    pending = []
    for message in messages:
        future = await broker.publish(
            message.event.to_json(), message.topic, key=message.key_bytes, headers=JSON_HEADERS, no_confirm=True
        )
        if future is not None:  # FastStream's in-memory test broker delivers synchronously
            pending.append(future)
    if pending:
        await asyncio.gather(*pending)
