"""FastStream wiring: submission-received batches into the validation use case."""

from __future__ import annotations

from services.validation.application import Validation
from shared.events import SubmissionReceived
from shared.kafka import subscribe_batch
from shared.kafka.codec import key_of
from shared.service import Service
from shared.topics import SUBMISSIONS_RECEIVED


def subscribe(service: Service, validation: Validation) -> None:
    subscribe_batch(
        service.broker,
        service=service.name,
        group_id=service.settings.consumer_group,
        decoders={service.topic(SUBMISSIONS_RECEIVED): SubmissionReceived.from_json},
        handler=validation.handle,
        dead_letters=service.dead_letters,
        settings=service.settings.kafka,
        keys={service.topic(SUBMISSIONS_RECEIVED): key_of(SUBMISSIONS_RECEIVED)},
    )
