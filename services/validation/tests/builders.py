"""Small builders of forms, cases and events for the validation tests: a valid case, changed per test."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from services.validation.domain import Case, KnownTumour
from shared.events import Child, DiagnosisForm, FollowUpForm, SubmissionReceived, TreatmentForm
from shared.events.forms import Sex

BIRTH = date(2015, 1, 1)
RECEIVED = date(2024, 3, 1)
RECEIVED_AT = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def diagnosis(**changes: Any) -> DiagnosisForm:
    """Medulloblastoma of the cerebellum, histologically verified: a form every check accepts."""
    fields: dict[str, Any] = dict(
        tumour_ref="T1",
        sex="male",
        diagnosis_date=date(2024, 2, 1),
        topography="C71.6",
        morphology="9470",
        behaviour=3,
        grade=9,
        basis=7,
    )
    return DiagnosisForm(**(fields | changes))


def treatment(**changes: Any) -> TreatmentForm:
    fields: dict[str, Any] = dict(tumour_ref="T1", modality="chemotherapy", start_date=date(2024, 2, 5))
    return TreatmentForm(**(fields | changes))


def follow_up(**changes: Any) -> FollowUpForm:
    fields: dict[str, Any] = dict(tumour_ref="T1", last_contact_date=date(2024, 2, 20), vital_status="alive")
    return FollowUpForm(**(fields | changes))


def case(
    form: DiagnosisForm | TreatmentForm | FollowUpForm | None = None,
    *,
    birth_date: date = BIRTH,
    sex: Sex = Sex.MALE,
    hospital_id: str = "ous",
    reference_date: date = RECEIVED,
) -> Case:
    return Case(
        submission_id=uuid.uuid4(),
        hospital_id=hospital_id,
        birth_date=birth_date,
        legal_sex=sex,
        form=form or diagnosis(),
        reference_date=reference_date,
    )


def known(
    tumour_ref: str = "T1",
    *,
    hospital_id: str = "ous",
    site_group: str = "C71",
    histology_group: int | None = 16,
    diagnosis_date: date = date(2024, 2, 1),
) -> KnownTumour:
    return KnownTumour(hospital_id, tumour_ref, site_group, histology_group, diagnosis_date, uuid.uuid4())


def pseudonym(n: int) -> str:
    """A valid registry pseudonym per child number (base32 alphabet, 32 characters)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    digits = []
    for _ in range(32):
        n, rest = divmod(n, 32)
        digits.append(alphabet[rest])
    return "".join(digits)


def received(
    form: DiagnosisForm | TreatmentForm | FollowUpForm | None = None,
    *,
    child: int = 1,
    birth_date: date = BIRTH,
    sex: Sex = Sex.MALE,
    received_at: datetime = RECEIVED_AT,
    **changes: Any,
) -> SubmissionReceived:
    submission_id = changes.pop("submission_id", uuid.uuid4())
    fields: dict[str, Any] = dict(
        submission_id=submission_id,
        hospital_id="ous",
        child=Child(pseudonym=pseudonym(child), birth_date=birth_date, sex=sex),
        form_version=1,
        form=form or diagnosis(),
        made_at=received_at,
        received_at=received_at,
        channel="http",
        # An original is its own report; a correction of an original is a version of that report.
        report_id=changes.get("supersedes") or submission_id,
    )
    return SubmissionReceived(**(fields | changes))
