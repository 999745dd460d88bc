"""FastStream wiring: validation's decisions, and the hospitals' inbound topic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.intake.application import InboundMessage, Intake, decode_inbound
from services.intake.crypto import Sealer
from shared.kafka import Delivery, subscribe_batch
from shared.kafka.codec import decoder_for, key_of
from shared.kafka.deadletters import DeadLetterPublisher
from shared.service import Service
from shared.topics import DEAD_LETTERS, HOSPITAL_INBOUND, SUBMISSIONS_REJECTED, SUBMISSIONS_VALIDATED


class UnanswerableMessage(Exception):
    """An inbound message intake must not answer on the receipts topic (see `Intake.apply_inbound`)."""


@dataclass(frozen=True, slots=True)
class _Record:
    """What a dead letter needs of the consumed record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


def inbound_group(service: Service) -> str:
    return f"{service.settings.consumer_group}-inbound"


def subscribe(service: Service, intake: Intake, dead_letter_sealer: Sealer, max_batch: int) -> None:
    """`max_batch`: records per transaction (see `IntakeSettings.consumer_batch`)."""
    kafka = service.settings.kafka
    kafka = kafka.model_copy(update={"max_batch": min(kafka.max_batch, max_batch)})
    subscribe_batch(
        service.broker,
        service="intake",
        group_id=service.settings.consumer_group,
        decoders={
            service.topic(SUBMISSIONS_VALIDATED): decoder_for(SUBMISSIONS_VALIDATED),
            service.topic(SUBMISSIONS_REJECTED): decoder_for(SUBMISSIONS_REJECTED),
        },
        handler=intake.apply_decisions,
        dead_letters=service.dead_letters,
        settings=kafka,
        keys={service.topic(spec): key_of(spec) for spec in (SUBMISSIONS_VALIDATED, SUBMISSIONS_REJECTED)},
    )

    # Inbound records hold identity numbers: their dead letters are sealed with the vault key.
    sealed_letters = DeadLetterPublisher(
        service.broker, "intake", inbound_group(service), service.topic(DEAD_LETTERS), seal=dead_letter_sealer.seal
    )

    async def inbound(batch: Sequence[Delivery[InboundMessage]]) -> None:
        unanswerable = await intake.apply_inbound(batch)
        if unanswerable:
            await sealed_letters.publish(
                [
                    (
                        _Record(d.topic, d.partition, d.offset, d.key, d.event.raw, d.headers),
                        UnanswerableMessage(reason),
                        1,
                    )
                    for d, reason in unanswerable
                ]
            )

    subscribe_batch(
        service.broker,
        service="intake",
        group_id=inbound_group(service),
        decoders={service.topic(HOSPITAL_INBOUND): decode_inbound},
        handler=inbound,
        dead_letters=sealed_letters,
        settings=kafka,
    )
