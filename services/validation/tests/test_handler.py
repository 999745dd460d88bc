"""The batch handler on FastStream's in-memory broker and a SQLite database: outputs, state, idempotency.

Delivery, ordering and dead letters on a real broker are in test_service_kafka.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka.errors import KafkaConnectionError
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.validation.app import MIGRATIONS
from services.validation.application import Validation
from services.validation.domain import reference
from services.validation.storage import ProcessedMessage, Tumour
from services.validation.tests.builders import diagnosis, pseudonym, received, treatment
from shared.db import create_engine, session_factory
from shared.db.migrations import upgrade
from shared.events import SubmissionReceived, SubmissionRejected, SubmissionValidated, derived_event_id
from shared.kafka import Delivery, subscribe_batch
from shared.kafka.deadletters import DeadLetterPublisher
from shared.settings import KafkaSettings
from shared.topics import SUBMISSIONS_RECEIVED, SUBMISSIONS_REJECTED, SUBMISSIONS_VALIDATED

RECEIVED, VALIDATED, REJECTED = SUBMISSIONS_RECEIVED.name, SUBMISSIONS_VALIDATED.name, SUBMISSIONS_REJECTED.name


@dataclass
class Harness:
    engine: AsyncEngine
    broker: KafkaBroker
    validation: Validation
    out: list[tuple[str, bytes, SubmissionValidated | SubmissionRejected]] = field(default_factory=list)

    async def send(self, *events: SubmissionReceived) -> None:
        async with TestKafkaBroker(self.broker) as broker:
            await broker.publish_batch(*(event.to_json() for event in events), topic=RECEIVED)

    async def count(self, model: Any) -> int:
        async with self.engine.connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(model)) or 0)

    async def tumours(self) -> list[Tumour]:
        async with session_factory(self.engine)() as session:
            return list(await session.scalars(select(Tumour).order_by(Tumour.tumour_ref)))


def validation_for(engine: AsyncEngine, broker: KafkaBroker) -> Validation:
    return Validation(
        session_factory(engine),
        broker,
        reference(),
        source_topic=RECEIVED,
        validated_topic=VALIDATED,
        rejected_topic=REJECTED,
    )


def _key(message: KafkaMessage) -> bytes:
    return cast(bytes, message.raw_message.key)  # type: ignore[union-attr]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'validation.db'}")
    await upgrade(engine, MIGRATIONS)
    broker = KafkaBroker()
    harness = Harness(engine, broker, validation_for(engine, broker))
    subscribe_batch(
        broker,
        service="validation",
        group_id="validation",
        decoders={RECEIVED: SubmissionReceived.from_json},
        handler=harness.validation.handle,
        dead_letters=DeadLetterPublisher(broker, "validation", "validation"),
        settings=KafkaSettings(),
    )

    @broker.subscriber(VALIDATED)
    async def validated(body: dict[str, Any], message: KafkaMessage) -> None:
        harness.out.append((VALIDATED, _key(message), SubmissionValidated.model_validate(body)))

    @broker.subscriber(REJECTED)
    async def rejected(body: dict[str, Any], message: KafkaMessage) -> None:
        harness.out.append((REJECTED, _key(message), SubmissionRejected.model_validate(body)))

    yield harness
    await engine.dispose()


async def test_outcomes_go_to_their_topics_keyed_by_the_child(harness: Harness) -> None:
    good = received(diagnosis(), child=1)
    bad = received(diagnosis(tumour_ref="T2", grade=5), child=2)
    await harness.send(good, bad)
    assert [(topic, key) for topic, key, _ in harness.out] == [
        (VALIDATED, pseudonym(1).encode()),
        (REJECTED, pseudonym(2).encode()),
    ]
    accepted, refused = harness.out[0][2], harness.out[1][2]
    assert accepted.iccc is not None and accepted.iccc.subgroup == "IIIc"
    assert (accepted.submission_id, accepted.received_event_id, accepted.child) == (
        good.submission_id,
        good.event_id,
        good.child,
    )
    assert [f.code for f in refused.findings] == ["GRADE_HISTOLOGY"]


async def test_outcome_ids_derive_from_the_input_and_the_tables(harness: Harness) -> None:
    event = received()
    await harness.send(event)
    [(_, _, outcome)] = harness.out
    assert outcome.event_id == derived_event_id(event.event_id, f"validation:{reference().fingerprint}")


async def test_the_batch_is_applied_in_order_and_the_tumour_kept(harness: Harness) -> None:
    await harness.send(received(diagnosis()), received(treatment()))
    assert [topic for topic, _, _ in harness.out] == [VALIDATED, VALIDATED]
    [tumour] = await harness.tumours()
    assert (tumour.child_pseudonym, tumour.hospital_id, tumour.tumour_ref) == (pseudonym(1), "ous", "T1")
    assert (tumour.site_group, tumour.histology_group, tumour.diagnosis_date) == ("C71", 16, date(2024, 2, 1))


async def test_tumours_of_earlier_batches_are_known(harness: Harness) -> None:
    await harness.send(received(diagnosis(), child=1))
    await harness.send(received(treatment(), child=1), received(treatment(), child=2))
    assert [topic for topic, _, _ in harness.out] == [VALIDATED, VALIDATED, REJECTED]
    assert [f.code for f in harness.out[2][2].findings] == ["UNKNOWN_TUMOUR"]  # child 2 has no T1


async def test_a_correction_updates_the_tumour(harness: Harness) -> None:
    first = received(diagnosis())
    await harness.send(first)
    corrected = received(diagnosis(diagnosis_date=date(2024, 2, 10)), supersedes=first.submission_id)
    await harness.send(corrected, received(treatment(start_date=date(2024, 2, 5))))
    [tumour] = await harness.tumours()
    assert (tumour.diagnosis_date, tumour.submission_id) == (date(2024, 2, 10), corrected.submission_id)
    assert [topic for topic, _, _ in harness.out] == [VALIDATED, VALIDATED, REJECTED]  # now before the diagnosis


async def test_several_treatment_reports_and_their_corrections_link_to_the_tumour_and_keep_their_report(
    harness: Harness,
) -> None:
    chemotherapy = received(treatment())
    surgery = received(treatment(modality="surgery", start_date=date(2024, 2, 12)))
    wrong = received(treatment(start_date=date(2024, 1, 5)), supersedes=chemotherapy.submission_id)  # too early
    fixed = received(
        treatment(start_date=date(2024, 2, 6)), supersedes=wrong.submission_id, report_id=chemotherapy.report_id
    )
    await harness.send(received(diagnosis()), chemotherapy, surgery, wrong, fixed)

    assert [topic for topic, _, _ in harness.out] == [VALIDATED, VALIDATED, VALIDATED, REJECTED, VALIDATED]
    outcomes = [outcome for _, _, outcome in harness.out[1:]]
    assert [o.report_id for o in outcomes] == [chemotherapy.submission_id, surgery.submission_id] + [
        chemotherapy.submission_id
    ] * 2
    assert [o.supersedes for o in outcomes] == [None, None, chemotherapy.submission_id, wrong.submission_id]
    assert [f.code for f in outcomes[2].findings] == ["DATE_ORDER"]  # linked: checked against the diagnosis
    assert len(await harness.tumours()) == 1


async def test_a_rejected_diagnosis_is_not_a_known_tumour(harness: Harness) -> None:
    await harness.send(received(diagnosis(grade=5)), received(treatment()))
    assert [topic for topic, _, _ in harness.out] == [REJECTED, REJECTED]
    assert await harness.tumours() == []


async def test_redelivered_and_repeated_events_are_applied_once(harness: Harness) -> None:
    event = received(diagnosis())
    await harness.send(event, event)  # a duplicate inside one batch
    await harness.send(event)  # and a redelivery
    assert len(harness.out) == 1
    assert await harness.count(ProcessedMessage) == 1
    assert len(await harness.tumours()) == 1


class FailingBroker:
    async def publish(self, *_: Any, **__: Any) -> None:
        raise KafkaConnectionError("broker away")


async def test_nothing_is_kept_when_the_outcomes_cannot_be_published(harness: Harness) -> None:
    validation = validation_for(harness.engine, cast(KafkaBroker, FailingBroker()))
    event = received(diagnosis())
    delivery = Delivery(event, None, RECEIVED, 0, 0)
    with pytest.raises(KafkaConnectionError):
        await validation.handle([delivery])
    assert await harness.count(ProcessedMessage) == 0  # the claim rolled back with the effects,
    assert await harness.tumours() == []  # so the redelivered batch is applied in full
    await harness.send(event)
    assert len(harness.out) == 1


async def test_one_query_loads_the_tumours_of_a_whole_batch(harness: Harness) -> None:
    statements: list[str] = []
    from sqlalchemy import event

    @event.listens_for(harness.engine.sync_engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement.split()[0].upper())

    batch: Sequence[SubmissionReceived] = [
        received(diagnosis(tumour_ref=f"T{n}"), child=n, submission_id=uuid.uuid4()) for n in range(50)
    ]
    await harness.send(*batch)
    assert len(harness.out) == 50
    # claim (one insert), tumours (select), tumours (insert): no per-message round trips
    assert statements.count("SELECT") == 1 and statements.count("INSERT") == 2
