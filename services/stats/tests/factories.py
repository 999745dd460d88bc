"""Realistic input events for the stats tests, and a small hand-checked event set."""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from shared.events import (
    Child,
    DiagnosisForm,
    Finding,
    FollowUpForm,
    IcccCode,
    ReceiptIssued,
    ReceiptStatus,
    Severity,
    SubmissionRejected,
    SubmissionValidated,
    TreatmentForm,
)
from shared.events.forms import Modality, Sex, VitalStatus

Outcome = SubmissionValidated | SubmissionRejected


def pseudonym(name: str) -> str:
    return base64.b32encode(hashlib.sha256(name.encode()).digest()[:20]).decode().lower()


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def child(name: str, birth: str, sex: str) -> Child:
    return Child(pseudonym=pseudonym(name), birth_date=date.fromisoformat(birth), sex=Sex(sex))


def _outcome(
    accepted: bool,
    hospital: str,
    kid: Child,
    form: Any,
    received: str,
    *,
    iccc: IcccCode | None = None,
    findings: tuple[Finding, ...] = (),
    corrects: Outcome | None = None,
) -> Outcome:
    """`corrects`: the version this one corrects (a version of the same report, as intake names them)."""
    cls = SubmissionValidated if accepted else SubmissionRejected
    submission_id = uuid.uuid4()
    return cls(
        submission_id=submission_id,
        received_event_id=uuid.uuid4(),
        hospital_id=hospital,
        child=kid,
        form=form,
        received_at=at(received),
        report_id=corrects.report_id if corrects else submission_id,
        supersedes=corrects.submission_id if corrects else None,
        iccc=iccc,
        findings=findings,
    )


def diagnosis(
    hospital: str,
    kid: Child,
    ref: str,
    diagnosed: str,
    received: str,
    *,
    topography: str = "C71.6",
    morphology: str = "9470",
    basis: int = 7,
    iccc: tuple[str, str] = ("III", "IIIc"),
    accepted: bool = True,
    findings: tuple[Finding, ...] = (),
    corrects: Outcome | None = None,
) -> Outcome:
    form = DiagnosisForm(
        tumour_ref=ref,
        sex=kid.sex,
        diagnosis_date=date.fromisoformat(diagnosed),
        topography=topography,
        morphology=morphology,
        behaviour=3,
        grade=9,
        basis=basis,
    )
    code = IcccCode(main_group=iccc[0], subgroup=iccc[1], recode="031", extended="031") if accepted else None
    return _outcome(accepted, hospital, kid, form, received, iccc=code, findings=findings, corrects=corrects)


def treatment(
    hospital: str, kid: Child, ref: str, started: str, received: str, *, accepted: bool = True, **kw: Any
) -> Outcome:
    form = TreatmentForm(tumour_ref=ref, modality=Modality.CHEMOTHERAPY, start_date=date.fromisoformat(started))
    return _outcome(accepted, hospital, kid, form, received, **kw)


def follow_up(
    hospital: str,
    kid: Child,
    ref: str,
    last_contact: str,
    received: str,
    *,
    dead: bool = False,
    accepted: bool = True,
    corrects: Outcome | None = None,
) -> Outcome:
    form = FollowUpForm(
        tumour_ref=ref,
        last_contact_date=date.fromisoformat(last_contact),
        vital_status=VitalStatus.DEAD if dead else VitalStatus.ALIVE,
        death_date=date.fromisoformat(last_contact) if dead else None,
    )
    return _outcome(accepted, hospital, kid, form, received, corrects=corrects)


def finding(code: str, severity: str = "error", overridden: bool = False) -> Finding:
    return Finding(code=code, severity=Severity(severity), fields=("form",), message=code, overridden=overridden)


def receipt(outcome: Outcome) -> ReceiptIssued:
    """The `received` receipt intake issued for the submission an outcome decides."""
    return ReceiptIssued(
        submission_id=outcome.submission_id,
        hospital_id=outcome.hospital_id,
        form_type=outcome.form.form_type,
        status=ReceiptStatus.RECEIVED,
        received_at=outcome.received_at,
    )


@dataclass
class Story:
    """A small, realistic reporting history with figures computed by hand (see test_projection)."""

    outcomes: list[Outcome] = field(default_factory=list)
    receipts: list[ReceiptIssued] = field(default_factory=list)

    def add(self, outcome: Outcome) -> Outcome:
        self.outcomes.append(outcome)
        self.receipts.append(receipt(outcome))
        return outcome

    @property
    def events(self) -> list[ReceiptIssued | Outcome]:
        """Receipts first, then outcomes: the order they are produced in."""
        return [*self.receipts, *self.outcomes]


def story() -> Story:
    s = Story()
    anna = child("anna", "2012-05-10", "female")
    bo = child("bo", "2020-02-01", "male")
    cleo = child("cleo", "2023-06-01", "female")
    dan = child("dan", "2016-09-09", "male")
    emil = child("emil", "2008-01-01", "male")
    # Oslo: four registered tumours.
    s.add(diagnosis("ous", anna, "A1", "2024-01-15", "2024-01-25"))
    s.add(treatment("ous", anna, "A1", "2024-01-20", "2024-02-04"))
    s.add(follow_up("ous", anna, "A1", "2025-01-10", "2025-01-20"))
    bo_first = s.add(
        diagnosis(
            "ous",
            bo,
            "B1",
            "2024-03-01",
            "2024-03-05",
            topography="C42.1",
            morphology="9811",
            basis=5,
            iccc=("I", "Ia"),
        )
    )
    s.add(
        diagnosis(
            "ous", bo, "B1", "2024-03-01", "2024-03-10",
            topography="C42.1", morphology="9837", basis=5, iccc=("I", "Ia"), corrects=bo_first,
        )
    )  # fmt: skip
    s.add(treatment("ous", bo, "B1", "2024-03-02", "2024-03-15", accepted=False, findings=(finding("E_DATES"),)))
    s.add(treatment("ous", bo, "B1", "2024-03-02", "2024-03-20"))
    s.add(
        diagnosis(
            "ous", cleo, "C1", "2024-04-10", "2024-04-20", topography="C74.9", morphology="9500",
            iccc=("IV", "IVa"), findings=(finding("W_AGE_SITE", "warning", overridden=True),),
        )
    )  # fmt: skip
    s.add(
        diagnosis(
            "ous", dan, "D1", "2024-05-02", "2024-05-06", accepted=False,
            findings=(finding("E_SEX_SITE"), finding("Q_LATERALITY", "query")),
        )
    )  # fmt: skip
    s.add(
        diagnosis(
            "ous", emil, "E1", "2023-11-01", "2023-12-01", topography="C80.9", morphology="8000", basis=1,
            iccc=("XII", "XIIb"),
        )
    )  # fmt: skip
    s.add(treatment("ous", emil, "E1", "2023-11-05", "2023-11-20"))
    # A submission intake received whose outcome has not come yet.
    pending = diagnosis("ous", dan, "D2", "2024-04-28", "2024-05-01")
    s.receipts.append(receipt(pending))
    # Haukeland: Anna's second primary tumour.
    s.add(
        diagnosis(
            "haukeland", anna, "H-7", "2024-06-01", "2024-06-11", topography="C64.9", morphology="8960",
            iccc=("VI", "VIa"),
        )
    )  # fmt: skip
    return s


STORY_TODAY = date(2025, 2, 1)


def synthetic(
    children: int,
    seed: int = 1,
    first_year: int = 2015,
    hospitals: tuple[str, ...] = ("ous", "haukeland", "st-olav", "unn"),
) -> list[ReceiptIssued | Outcome]:
    """A reporting history of `children` children in the order intake and validation produce it: per
    child a diagnosis (sometimes rejected first, sometimes corrected), treatment reports, follow-ups."""
    import random
    from datetime import timedelta

    rng = random.Random(seed)
    codes = (
        ("C42.1", "9836", 5, ("I", "Ia")),
        ("C71.6", "9470", 7, ("III", "IIIc")),
        ("C74.9", "9500", 7, ("IV", "IVa")),
        ("C64.9", "8960", 7, ("VI", "VIa")),
        ("C77.3", "9650", 7, ("II", "IIa")),
        ("C80.9", "8000", 2, ("XII", "XIIb")),
    )
    timed: list[tuple[datetime, int, ReceiptIssued | Outcome]] = []

    def emit(outcome: Outcome) -> Outcome:
        timed.append((outcome.received_at, len(timed), receipt(outcome)))
        timed.append((outcome.received_at + timedelta(seconds=2), len(timed), outcome))
        return outcome

    def day(d: date) -> str:
        return d.isoformat()

    for n in range(children):
        hospital = hospitals[rng.randrange(len(hospitals))]
        diagnosed = date(first_year, 1, 1) + timedelta(days=rng.randrange(365 * 9))
        born = diagnosed - timedelta(days=rng.randrange(1, 365 * 17))
        kid = child(f"child-{seed}-{n}", day(born), rng.choice(("female", "male")))
        ref = f"T{seed}-{n}"  # unique within a hospital, as tumour references are
        topography, morphology, basis, iccc = codes[rng.randrange(len(codes))]
        reported = diagnosed + timedelta(days=rng.randrange(1, 60))
        if rng.random() < 0.1:
            emit(diagnosis(hospital, kid, ref, day(diagnosed), day(reported), accepted=False,
                           findings=(finding("E_DATES"),)))  # fmt: skip
            reported += timedelta(days=rng.randrange(1, 10))
        first = emit(diagnosis(hospital, kid, ref, day(diagnosed), day(reported), topography=topography,
                               morphology=morphology, basis=basis, iccc=iccc))  # fmt: skip
        if rng.random() < 0.1:
            emit(diagnosis(hospital, kid, ref, day(diagnosed), day(reported + timedelta(days=3)),
                           topography=topography, morphology=morphology, basis=basis, iccc=iccc,
                           corrects=first))  # fmt: skip
        if rng.random() < 0.9:
            for k in range(rng.randrange(1, 4)):
                sent = reported + timedelta(days=rng.randrange(1, 90) + 30 * k)
                emit(treatment(hospital, kid, ref, day(diagnosed + timedelta(days=3)), day(sent)))
        for years in (1, 3, 5):
            if rng.random() < 0.8:
                contact = diagnosed + timedelta(days=365 * years + rng.randrange(-60, 60))
                emit(follow_up(hospital, kid, ref, day(contact), day(contact + timedelta(days=rng.randrange(1, 30)))))
    timed.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in timed]
