"""The benchmark's inputs: synthetic hospital submissions (deploy.synthetic) turned into the events the
services consume, the way intake and validation would make them, without running either.

- `received_stream`: `SubmissionReceived` events (validation's input) with the `ReceiptIssued(received)`
  receipts intake sends with them (one of stats' inputs);
- `outcome_stream`: the same, plus validation's decision on each (`SubmissionValidated` /
  `SubmissionRejected`, coded and checked by validation's own pure domain code): stats' and export's
  inputs, for the replay.

Each event is yielded encoded, as (topic spec, key, value bytes), ready to produce.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import orjson

from deploy.synthetic import GeneratorConfig, Item, Kind, generate
from services.intake.crypto import registry_pseudonymiser
from services.intake.domain.identity import IdentityError, parse_national_id
from services.intake.domain.receipts import received_receipt
from services.intake.domain.submissions import Precedent, Refused, parse_submission, received_event, supersession
from services.validation.application import Validation, case_of
from services.validation.domain import assess, reference
from services.validation.storage import TumourLedger
from shared.events import SubmissionReceived
from shared.events.forms import FormType
from shared.events.submissions import Channel
from shared.topics import RECEIPTS, SUBMISSIONS_RECEIVED, SUBMISSIONS_REJECTED, SUBMISSIONS_VALIDATED, TopicSpec

BENCH_PSEUDONYM_KEY = b"registry-benchmark-pseudonym-key-32-bytes-long!!"  # not a secret: synthetic data only

Record = tuple[TopicSpec, bytes, bytes]  # topic, key, value


def items(count: int, seed: int = 1, *, start_year: int = 1986, years: int = 40) -> Iterator[Item]:
    """`count` submissions (reservations left out: they are staff actions), spread over the registry years
    from `start_year` (the first `count` in the order made)."""
    per_year = count / years / 3  # four to five submissions a case by the end of the period: generous
    config = GeneratorConfig(seed=seed, start_year=start_year, years=years, cases_per_year=max(50.0, per_year))
    submissions = (item for item in generate(config) if item.kind is Kind.SUBMISSION)
    return itertools.islice(submissions, count)


@dataclass
class _Intake:
    """What intake decides about a hospital's message, in memory: the child's pseudonym and supersession."""

    def __post_init__(self) -> None:
        self.pseudonymise = registry_pseudonymiser(BENCH_PSEUDONYM_KEY)
        self.history: dict[tuple[str, str], list[Precedent]] = {}  # (hospital, tumour ref) -> in receipt order

    def received(self, item: Item) -> SubmissionReceived | None:
        try:
            submission = parse_submission(orjson.dumps(item.payload))
            identity = parse_national_id(submission.patient.national_id, today=item.made_at.date())
        except (Refused, IdentityError):
            return None
        form = submission.form
        pseudonym = self.pseudonymise(identity.number)
        history = self.history.setdefault((submission.hospital_id, form.tumour_ref), [])
        lineage, issues = supersession(submission, pseudonym, history)  # intake's own rule
        if issues:
            return None
        history.append(
            Precedent(
                submission.submission_id,
                pseudonym,
                FormType(form.form_type),
                submission.made_at,
                lineage.report_id,
                lineage.supersedes,
            )
        )
        received_at = submission.made_at + timedelta(minutes=5)
        return received_event(submission, identity, pseudonym, lineage, Channel.KAFKA, received_at)


def received_stream(
    count: int, seed: int = 1, *, receipts: bool = True, start_year: int = 1986, years: int = 40
) -> Iterator[Record]:
    """Up to `count` received submissions (intake refuses a few of the generated ones), each followed by
    its receipt when `receipts`."""
    intake = _Intake()
    for item in items(count, seed, start_year=start_year, years=years):
        event = intake.received(item)
        if event is None:
            continue
        key = event.child.pseudonym.encode()
        yield SUBMISSIONS_RECEIVED, key, event.to_json()
        if receipts:
            receipt = received_receipt(
                event.submission_id, event.hospital_id, FormType(event.form.form_type), event.received_at
            )
            yield RECEIPTS, event.hospital_id.encode(), receipt.to_json()


def outcome_stream(count: int, seed: int = 1) -> Iterator[Record]:
    """For up to `count` submissions: the receipt and validation's decision (about two events each)."""
    tables = reference()
    # Only its event building is used: no database, no broker.
    validation = Validation(
        cast(Any, None),
        cast(Any, None),
        tables,
        source_topic=SUBMISSIONS_RECEIVED.name,
        validated_topic=SUBMISSIONS_VALIDATED.name,
        rejected_topic=SUBMISSIONS_REJECTED.name,
    )
    ledger = TumourLedger()
    intake = _Intake()
    for item in items(count, seed):
        event = intake.received(item)
        if event is None:
            continue
        receipt = received_receipt(
            event.submission_id, event.hospital_id, FormType(event.form.form_type), event.received_at
        )
        yield RECEIPTS, event.hospital_id.encode(), receipt.to_json()
        child = event.child.pseudonym
        assessment = assess(case_of(event), ledger.of(child), tables)
        if assessment.tumour is not None:
            ledger.remember(child, assessment.tumour)
        outgoing = validation._outgoing(event, assessment)
        spec = SUBMISSIONS_VALIDATED if assessment.accepted else SUBMISSIONS_REJECTED
        yield spec, child.encode(), outgoing.event.to_json()
