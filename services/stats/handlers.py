"""FastStream wiring: one batch subscription over stats' three input topics."""

from __future__ import annotations

from services.stats.application import StatsApplication
from shared.kafka import subscribe_batch
from shared.kafka.codec import decoder_for, key_of
from shared.service import Service
from shared.topics import RECEIPTS, SUBMISSIONS_REJECTED, SUBMISSIONS_VALIDATED, TopicSpec

INPUT_TOPICS: tuple[TopicSpec, ...] = (SUBMISSIONS_VALIDATED, SUBMISSIONS_REJECTED, RECEIPTS)


def subscribe(service: Service, stats: StatsApplication) -> None:
    subscribe_batch(
        service.broker,
        service="stats",
        group_id=service.settings.consumer_group,
        decoders={service.topic(spec): decoder_for(spec) for spec in INPUT_TOPICS},
        handler=stats.handle,
        dead_letters=service.dead_letters,
        settings=service.settings.kafka,
        keys={service.topic(spec): key_of(spec) for spec in INPUT_TOPICS},
        consumers=stats.settings.consumers,
    )
