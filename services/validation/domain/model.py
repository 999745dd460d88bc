"""What the checks take and give: a case to assess, the tumours already known for the child, the outcome."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from shared.events import Finding, IcccCode
from shared.events.forms import DiagnosisForm, FollowUpForm, Sex, TreatmentForm

AnyForm = DiagnosisForm | TreatmentForm | FollowUpForm

# Whether a date is "in the future" is decided on the registry's calendar, not UTC's: a form received at
# 00:30 in Oslo may well carry that day's date.
REGISTRY_TIMEZONE = ZoneInfo("Europe/Oslo")


@dataclass(frozen=True, slots=True)
class Case:
    """One submitted form and what is known about the child, as the service or `registry check` has it."""

    submission_id: uuid.UUID
    hospital_id: str
    birth_date: date
    legal_sex: Sex
    form: AnyForm
    # "Today" for this form: the registry-local date it was received, so a replay decides as the first run.
    reference_date: date
    is_correction: bool = False


@dataclass(frozen=True, slots=True)
class KnownTumour:
    """A tumour of the child from an accepted diagnosis form: what linkage and duplicate checks need."""

    hospital_id: str
    tumour_ref: str
    site_group: str  # IARC multiple-primary topography group, e.g. C71, C41 (for C40 and C41)
    histology_group: int | None  # IARC multiple-primary histology group; None when the rules have none
    diagnosis_date: date
    submission_id: uuid.UUID

    def is_same_tumour(self, hospital_id: str, tumour_ref: str) -> bool:
        return self.hospital_id == hospital_id and self.tumour_ref == tumour_ref


@dataclass(frozen=True, slots=True)
class Assessment:
    accepted: bool
    iccc: IcccCode | None
    findings: tuple[Finding, ...]
    tumour: KnownTumour | None = None  # set for an accepted diagnosis: the tumour to remember


def age_at(birth: date, day: date) -> int:
    """Completed years on `day`."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def registry_date(moment: datetime) -> date:
    """The registry's calendar date at an (aware) moment."""
    return moment.astimezone(REGISTRY_TIMEZONE).date()
