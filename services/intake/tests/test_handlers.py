"""Intake's consumers on FastStream's in-memory broker: receipts follow validation's decisions, and the
inbound topic is answered like the HTTP API. Delivery guarantees are tested on the real broker."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker

from services.intake.crypto import Purpose, Sealer
from services.intake.tests.conftest import OUS, Harness
from services.intake.tests.factories import CHILD, diagnosis, encode, submission, treatment
from shared.events import DeadLetter, Finding, ReceiptIssued, Severity, SubmissionReceived
from shared.events.validation import SubmissionRejected, SubmissionValidated, ValidationOutcome
from shared.settings import key_bytes
from shared.topics import (
    DEAD_LETTERS,
    HOSPITAL_INBOUND,
    RECEIPTS,
    SUBMISSIONS_RECEIVED,
    SUBMISSIONS_REJECTED,
    SUBMISSIONS_VALIDATED,
)


class Kafka:
    def __init__(self, harness: Harness, broker: Any, dead: list[DeadLetter]) -> None:
        self.harness = harness
        self.broker = broker
        self.dead = dead  # what reached the dead-letter topic

    def topic(self, spec: Any) -> str:
        return self.harness.settings.kafka.topic(spec)

    async def decide(self, outcome: ValidationOutcome) -> None:
        spec = SUBMISSIONS_VALIDATED if isinstance(outcome, SubmissionValidated) else SUBMISSIONS_REJECTED
        await self.broker.publish(outcome.to_json(), topic=self.topic(spec), key=outcome.child.pseudonym.encode())

    async def inbound(self, value: bytes, hospital: str | None = "ous", header: str | None = "ous") -> None:
        headers = {"hospital-id": header} if header is not None else {}
        key = hospital.encode() if hospital is not None else None
        await self.broker.publish(value, topic=self.topic(HOSPITAL_INBOUND), key=key, headers=headers)


@pytest.fixture
async def kafka(harness: Harness) -> AsyncIterator[Kafka]:
    dead: list[DeadLetter] = []
    broker = harness.service.broker

    @broker.subscriber(harness.settings.kafka.topic(DEAD_LETTERS))
    async def collect(body: dict[str, Any]) -> None:
        dead.append(DeadLetter.model_validate(body))

    async with TestKafkaBroker(broker) as test_broker:
        yield Kafka(harness, test_broker, dead)


def outcome(received: SubmissionReceived, kind: type[ValidationOutcome], at: datetime, *findings: Finding) -> Any:
    return kind(
        **received.derive(f"test:{at.isoformat()}"),
        occurred_at=at,
        submission_id=received.submission_id,
        received_event_id=received.event_id,
        hospital_id=received.hospital_id,
        child=received.child,
        form=received.form,
        received_at=received.received_at,
        report_id=received.report_id,
        supersedes=received.supersedes,
        findings=findings,
    )


async def receive_one(harness: Harness) -> SubmissionReceived:
    response = await harness.client.post("/v1/submissions", content=encode(submission()), headers=OUS)
    assert response.status_code == 202
    event = (await harness.outbox_events(SUBMISSIONS_RECEIVED.name, SubmissionReceived))[-1]
    assert isinstance(event, SubmissionReceived)
    return event


async def receipts(harness: Harness) -> list[ReceiptIssued]:
    return [r for r in await harness.outbox_events(RECEIPTS.name, ReceiptIssued) if isinstance(r, ReceiptIssued)]


FINDING = Finding(code="SEX_SITE", severity=Severity.ERROR, fields=("form.topography",), message="implausible")


async def test_validation_decisions_move_the_receipt(harness: Harness, kafka: Kafka) -> None:
    received = await receive_one(harness)
    now = datetime.now(UTC)
    await kafka.decide(outcome(received, SubmissionRejected, now, FINDING))

    receipt = (await harness.client.get(f"/v1/receipts/{received.submission_id}", headers=OUS)).json()
    assert receipt["status"] == "rejected"
    assert receipt["findings"][0]["code"] == "SEX_SITE"
    issued = await receipts(harness)
    assert [r.status for r in issued] == ["received", "rejected"]
    assert issued[1].findings == (FINDING,) and issued[1].decided_at == now

    # A later decision (a replay after recoding) replaces it; an older one does not.
    await kafka.decide(outcome(received, SubmissionValidated, now + timedelta(seconds=1)))
    await kafka.decide(outcome(received, SubmissionRejected, now - timedelta(seconds=1), FINDING))
    receipt = (await harness.client.get(f"/v1/receipts/{received.submission_id}", headers=OUS)).json()
    assert (receipt["status"], receipt["findings"]) == ("accepted", [])
    assert [r.status for r in await receipts(harness)] == ["received", "rejected", "accepted"]


async def test_a_redelivered_decision_changes_nothing(harness: Harness, kafka: Kafka) -> None:
    received = await receive_one(harness)
    decision = outcome(received, SubmissionValidated, datetime.now(UTC))
    await kafka.decide(decision)
    await kafka.decide(decision)
    assert [r.status for r in await receipts(harness)] == ["received", "accepted"]


async def test_a_decision_about_an_unknown_submission_is_skipped(harness: Harness, kafka: Kafka) -> None:
    received = await receive_one(harness)
    stranger = received.model_copy(update={"submission_id": uuid.uuid4(), "event_id": uuid.uuid4()})
    await kafka.decide(outcome(stranger, SubmissionValidated, datetime.now(UTC)))
    assert [r.status for r in await receipts(harness)] == ["received"]
    assert kafka.dead == []


async def test_an_inbound_message_is_registered_like_an_http_submission(harness: Harness, kafka: Kafka) -> None:
    body = submission()
    await kafka.inbound(encode(body))
    await kafka.inbound(encode(body))  # the hospital resends: no second submission

    events = await harness.outbox_events(SUBMISSIONS_RECEIVED.name, SubmissionReceived)
    assert len(events) == 1 and isinstance(events[0], SubmissionReceived)
    assert events[0].channel == "kafka" and str(events[0].submission_id) == body["submission_id"]
    assert [r.status for r in await receipts(harness)] == ["received"]
    http = await harness.client.post("/v1/submissions", content=encode(body), headers=OUS)
    assert http.status_code == 200  # one core: the HTTP API knows it too


async def test_an_invalid_inbound_message_gets_a_rejected_receipt_with_the_field_errors(
    harness: Harness, kafka: Kafka
) -> None:
    body = submission(form=diagnosis(grade=0, sex="male"))
    await kafka.inbound(encode(body))
    await kafka.inbound(encode(body))  # redelivered: the same answer is not written twice

    (receipt,) = await receipts(harness)
    assert receipt.status == "rejected" and str(receipt.submission_id) == body["submission_id"]
    assert [(f.code, f.fields) for f in receipt.findings] == [("INVALID_FIELD", ("form.grade",))]
    assert await harness.outbox(SUBMISSIONS_RECEIVED.name) == []

    sex = submission(form=diagnosis(sex="male"))
    await kafka.inbound(encode(sex))
    refused = (await receipts(harness))[-1]
    assert [f.code for f in refused.findings] == ["SEX_CONTRADICTS_IDENTITY"]
    assert all(CHILD not in row.payload for row in await harness.outbox())


async def test_an_inbound_correction_is_checked_like_an_http_one(harness: Harness, kafka: Kafka) -> None:
    first = submission(form=treatment())
    await kafka.inbound(encode(first))
    later = datetime(2024, 3, 3, tzinfo=UTC)
    correction = submission(form=treatment(start_date="2024-03-11"), made_at=later, corrects=first["submission_id"])
    await kafka.inbound(encode(correction))
    stray = submission(form=treatment(), made_at=later, corrects=str(uuid.uuid4()))
    await kafka.inbound(encode(stray))

    events = await harness.outbox_events(SUBMISSIONS_RECEIVED.name, SubmissionReceived)
    assert [(str(e.report_id), str(e.supersedes)) for e in events if isinstance(e, SubmissionReceived)] == [
        (first["submission_id"], "None"),
        (first["submission_id"], first["submission_id"]),
    ]
    refused = (await receipts(harness))[-1]
    assert str(refused.submission_id) == stray["submission_id"] and refused.status == "rejected"
    assert [(f.code, f.fields) for f in refused.findings] == [("CORRECTS_UNKNOWN_SUBMISSION", ("corrects",))]


@pytest.mark.parametrize(
    ("value", "hospital", "header"),
    [
        (b"not json", "ous", "ous"),
        (b'{"hospital_id": "ous", "form": {"form_type": "diagnosis"}}', "ous", "ous"),  # no submission id
        (b"[" * 100_000 + b"]" * 100_000, "ous", "ous"),  # nested past any parser's recursion
        (encode(submission(hospital_id="elsewhere")), "ous", "ous"),  # no known hospital to answer
        (encode(submission()), "ous", None),  # no hospital-id header
        (encode(submission()), "ous", "unn"),  # header names another hospital
        (encode(submission()), "unn", "unn"),  # key and header say unn, the body says ous
    ],
)
async def test_unanswerable_inbound_messages_become_sealed_dead_letters(
    harness: Harness, kafka: Kafka, value: bytes, hospital: str, header: str | None
) -> None:
    await kafka.inbound(value, hospital, header)

    (letter,) = kafka.dead
    assert letter.value_encoding == "fernet"
    sealed = base64.b64decode(letter.value_b64)
    assert CHILD.encode() not in sealed
    opener = Sealer(key_bytes(harness.settings.vault_key), Purpose.DEAD_LETTERS)
    assert opener.open(sealed) == value  # an operator with the vault key can redrive it
    assert CHILD not in letter.error
    assert await harness.outbox() == []


async def test_a_reused_inbound_submission_id_is_dead_lettered(harness: Harness, kafka: Kafka) -> None:
    body = submission()
    await kafka.inbound(encode(body))
    await kafka.inbound(encode(body | {"form": diagnosis(grade=1)}))
    (letter,) = kafka.dead
    assert "different content" in letter.error
    assert [r.status for r in await receipts(harness)] == ["received"]


async def test_an_inbound_message_over_the_size_limit_is_refused(harness: Harness, kafka: Kafka) -> None:
    body = submission(form=treatment(protocol="x" * 80)) | {"padding": "x" * harness.settings.max_body_bytes}
    await kafka.inbound(encode(body))
    (receipt,) = await receipts(harness)
    assert receipt.status == "rejected" and [f.code for f in receipt.findings] == ["TOO_LARGE"]
