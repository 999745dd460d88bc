"""Events as validation and intake publish them, for export's tests."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from itertools import count

from shared.events import (
    Child,
    DiagnosisForm,
    FollowUpForm,
    IcccCode,
    ReservationRegistered,
    ReservationWithdrawn,
    SubmissionValidated,
    TreatmentForm,
)
from shared.events.forms import Modality, Sex, VitalStatus
from shared.pseudonym import Pseudonymiser

KEY = b"export-test-key-".ljust(32, b"x")
REGISTRY = Pseudonymiser(b"registry-test-key".ljust(32, b"r"), "registry")
_clock = count()
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def pseudonym(n: int | str) -> str:
    return REGISTRY(str(n))


def child(n: int | str, birth_date: date, sex: Sex = Sex.FEMALE) -> Child:
    return Child(pseudonym=pseudonym(n), birth_date=birth_date, sex=sex)


def _received() -> datetime:
    # Later reports are received later: a correction replaces what it corrects.
    return T0 + timedelta(seconds=next(_clock))


def diagnosis(
    who: Child,
    diagnosed: date,
    *,
    tumour: str = "T1",
    hospital: str = "ous",
    morphology: str = "9836",
    corrects: SubmissionValidated | None = None,
) -> SubmissionValidated:
    form = DiagnosisForm(
        tumour_ref=tumour,
        sex=who.sex,
        diagnosis_date=diagnosed,
        topography="C42.1",
        morphology=morphology,
        behaviour=3,
        grade=9,
        basis=7,
        stage="SR",
    )
    iccc = IcccCode(main_group="I", subgroup="Ia", division="Ia.1", recode="011", extended="011")
    return _validated(who, form, hospital, iccc, corrects)


def treatment(
    who: Child,
    started: date,
    *,
    tumour: str = "T1",
    hospital: str = "ous",
    protocol: str = "ALLTogether1",
    modality: Modality = Modality.CHEMOTHERAPY,
    corrects: SubmissionValidated | None = None,
) -> SubmissionValidated:
    form = TreatmentForm(tumour_ref=tumour, modality=modality, protocol=protocol, start_date=started)
    return _validated(who, form, hospital, None, corrects)


def follow_up(
    who: Child,
    contact: date,
    *,
    tumour: str = "T1",
    hospital: str = "ous",
    late_effects: tuple[str, ...] = (),
    corrects: SubmissionValidated | None = None,
) -> SubmissionValidated:
    form = FollowUpForm(
        tumour_ref=tumour, last_contact_date=contact, vital_status=VitalStatus.ALIVE, late_effects=late_effects
    )
    return _validated(who, form, hospital, None, corrects)


def _validated(
    who: Child,
    form: DiagnosisForm | TreatmentForm | FollowUpForm,
    hospital: str,
    iccc: IcccCode | None,
    corrects: SubmissionValidated | None,
) -> SubmissionValidated:
    """An original is a report of its own; a correction (`corrects`: the version it replaces) is a version
    of that one's report, as intake names them."""
    submission_id = uuid.uuid4()
    return SubmissionValidated(
        submission_id=submission_id,
        received_event_id=uuid.uuid4(),
        hospital_id=hospital,
        child=who,
        form=form,
        received_at=_received(),
        report_id=corrects.report_id if corrects else submission_id,
        supersedes=corrects.submission_id if corrects else None,
        iccc=iccc,
    )


def reserved(who: Child) -> ReservationRegistered:
    return ReservationRegistered(
        reservation_id=uuid.uuid4(), child_pseudonym=who.pseudonym, recorded_by="staff-anna", effective_at=_received()
    )


def withdrawn(who: Child) -> ReservationWithdrawn:
    return ReservationWithdrawn(
        reservation_id=uuid.uuid4(), child_pseudonym=who.pseudonym, recorded_by="staff-anna", effective_at=_received()
    )
