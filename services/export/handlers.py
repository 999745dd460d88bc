"""Export's Kafka wiring: validated reports and reservations, one batch subscriber over both topics."""

from __future__ import annotations

from services.export.application import ExportApplication
from shared.kafka import subscribe_batch
from shared.kafka.codec import decoder_for, key_of
from shared.service import Service
from shared.topics import RESERVATIONS, SUBMISSIONS_VALIDATED


def subscribe(service: Service, application: ExportApplication, *, consumers: int = 1) -> None:
    subscribe_batch(
        service.broker,
        service="export",
        group_id=service.settings.consumer_group,
        decoders={
            service.topic(SUBMISSIONS_VALIDATED): decoder_for(SUBMISSIONS_VALIDATED),
            service.topic(RESERVATIONS): decoder_for(RESERVATIONS),
        },
        handler=application.handle,
        dead_letters=service.dead_letters,
        settings=service.settings.kafka,
        keys={service.topic(spec): key_of(spec) for spec in (SUBMISSIONS_VALIDATED, RESERVATIONS)},
        consumers=consumers,
    )
