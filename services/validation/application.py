"""The use case: a batch of received submissions becomes validated and rejected events, in one transaction."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Sequence

from faststream.kafka import KafkaBroker
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.validation.domain import Assessment, Case, ReferenceData, assess, registry_date
from services.validation.storage import ProcessedMessage, TumourLedger
from shared.db import claim_new
from shared.events import SubmissionReceived, SubmissionRejected, SubmissionValidated
from shared.kafka import Delivery, Outgoing, publish_all
from shared.observability.metrics import EVENTS_DUPLICATE_TOTAL, EVENTS_PROCESSED_TOTAL

CONSUMER = "validation"

OUTCOMES_TOTAL = Counter(
    "validation_outcomes_total", "Submissions validated, by outcome and form type.", ["status", "form_type"]
)
FINDINGS_TOTAL = Counter(
    "validation_findings_total",
    "Check findings reported, by code and severity (overridden warnings included).",
    ["code", "severity"],
)


def case_of(event: SubmissionReceived) -> Case:
    return Case(
        submission_id=event.submission_id,
        hospital_id=event.hospital_id,
        birth_date=event.child.birth_date,
        legal_sex=event.child.sex,
        form=event.form,
        reference_date=registry_date(event.received_at),
        is_correction=event.supersedes is not None,
    )


class Validation:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        broker: KafkaBroker,
        reference: ReferenceData,
        *,
        source_topic: str,
        validated_topic: str,
        rejected_topic: str,
    ) -> None:
        self._sessions = sessions
        self._broker = broker
        self._reference = reference
        self._source_topic = source_topic
        self._validated_topic = validated_topic
        self._rejected_topic = rejected_topic
        # Outcome ids derive from the input *and* the reference tables: reprocessing with the same tables
        # republishes the same ids (consumers drop them), a replay after a table update yields new outcomes.
        self._purpose = f"validation:{reference.fingerprint}"

    async def handle(self, batch: Sequence[Delivery[SubmissionReceived]]) -> None:
        outcomes: list[tuple[SubmissionReceived, Assessment]] = []
        async with self._sessions.begin() as session:
            new = await claim_new(session, ProcessedMessage, CONSUMER, [d.event.event_id for d in batch])
            fresh = []
            for delivery in batch:  # offset order, which is each child's order
                if delivery.event.event_id in new:
                    new.discard(delivery.event.event_id)  # a duplicate inside the batch is skipped too
                    fresh.append(delivery.event)
            ledger = await TumourLedger.load(session, {event.child.pseudonym for event in fresh})
            for event in fresh:
                assessment = assess(case_of(event), ledger.of(event.child.pseudonym), self._reference)
                if assessment.tumour is not None:
                    ledger.remember(event.child.pseudonym, assessment.tumour)
                outcomes.append((event, assessment))
            await ledger.save(session)
            await publish_all(self._broker, [self._outgoing(event, assessment) for event, assessment in outcomes])
        self._count(len(batch), outcomes)

    def _outgoing(self, event: SubmissionReceived, assessment: Assessment) -> Outgoing:
        outcome = SubmissionValidated if assessment.accepted else SubmissionRejected
        return Outgoing(
            self._validated_topic if assessment.accepted else self._rejected_topic,
            event.child.pseudonym,
            outcome(
                **event.derive(self._purpose),
                submission_id=event.submission_id,
                received_event_id=event.event_id,
                hospital_id=event.hospital_id,
                child=event.child,
                form=event.form,
                received_at=event.received_at,
                report_id=event.report_id,
                supersedes=event.supersedes,
                iccc=assessment.iccc,
                findings=assessment.findings,
            ),
        )

    def _count(self, delivered: int, outcomes: Sequence[tuple[SubmissionReceived, Assessment]]) -> None:
        EVENTS_PROCESSED_TOTAL.labels(service=CONSUMER, topic=self._source_topic).inc(len(outcomes))
        if delivered > len(outcomes):
            EVENTS_DUPLICATE_TOTAL.labels(service=CONSUMER, topic=self._source_topic).inc(delivered - len(outcomes))
        statuses = Tally(
            ("accepted" if assessment.accepted else "rejected", event.form.form_type) for event, assessment in outcomes
        )
        for (status, form_type), count in statuses.items():
            OUTCOMES_TOTAL.labels(status=status, form_type=form_type).inc(count)
        findings = Tally((f.code, f.severity.value) for _, assessment in outcomes for f in assessment.findings)
        for (code, severity), count in findings.items():
            FINDINGS_TOTAL.labels(code=code, severity=severity).inc(count)
