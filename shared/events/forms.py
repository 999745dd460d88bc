"""The clinical content of the three forms hospitals send, shared by intake's API and every event.

These models carry no identity: the national identity number travels only in intake's API request
(`shared.events.submissions.PatientIdentity`) and is replaced by the registry pseudonym before any event.
Structural rules live here (formats, ranges); clinical plausibility (date order, code combinations) is
validation's job, so that an implausible form still gets a receipt and a rejection with reasons.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from shared.events.base import StrictModel, TumourRef

Topography = Annotated[str, StringConstraints(pattern=r"^C\d{2}\.\d$")]  # ICD-O-3, e.g. C71.6
Histology = Annotated[str, StringConstraints(pattern=r"^\d{4}$")]  # ICD-O-3 morphology, e.g. 9470
FindingCode = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{2,40}$")]

# The shape of a Norwegian identity number (as the log redaction has it): 11 digits, maybe spaced 6 + 5.
_IDENTITY_NUMBER = re.compile(r"(?<!\d)\d{6} ?\d{5}(?!\d)")


def _without_identity_number(text: str) -> str:
    """Free text travels on every topic (and stage and protocol to NOPHO-Care): an identity number written
    into it would escape the vault. Refused; the error never repeats the text."""
    if _IDENTITY_NUMBER.search(text):
        raise ValueError("must not contain an identity number")
    return text


# Short free text a hospital writes (stage, protocol, late effects): no identity numbers in it.
Stage = Annotated[str, StringConstraints(min_length=1, max_length=32), AfterValidator(_without_identity_number)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=80), AfterValidator(_without_identity_number)]


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


class Laterality(StrEnum):
    """SEER laterality, named rather than numbered."""

    NOT_PAIRED = "not_paired"
    RIGHT = "right"
    LEFT = "left"
    ONE_SIDE_UNSPECIFIED = "one_side_unspecified"
    BILATERAL = "bilateral"
    PAIRED_UNKNOWN = "paired_unknown"


class Modality(StrEnum):
    CHEMOTHERAPY = "chemotherapy"
    SURGERY = "surgery"
    RADIOTHERAPY = "radiotherapy"
    STEM_CELL_TRANSPLANT = "stem_cell_transplant"


class Intent(StrEnum):
    CURATIVE = "curative"
    PALLIATIVE = "palliative"
    UNKNOWN = "unknown"


class VitalStatus(StrEnum):
    ALIVE = "alive"
    DEAD = "dead"


class FormType(StrEnum):
    DIAGNOSIS = "diagnosis"
    TREATMENT = "treatment"
    FOLLOW_UP = "follow_up"


class DiagnosisForm(StrictModel):
    """Investigation notification: the tumour as the hospital diagnosed it, coded in ICD-O-3."""

    form_type: Literal["diagnosis"] = "diagnosis"
    tumour_ref: TumourRef
    sex: Sex
    diagnosis_date: date
    topography: Topography
    morphology: Histology
    behaviour: int = Field(ge=0, le=3, description="ICD-O-3 behaviour: 0 benign .. 3 malignant")
    grade: int = Field(ge=1, le=9, description="ICD-O-3 grade/differentiation, 9 = not determined")
    laterality: Laterality = Laterality.NOT_PAIRED
    basis: int = Field(ge=0, le=9, description="Basis of diagnosis (IACR): 0 DCO .. 7 histology, 9 unknown")
    stage: Stage | None = None
    coder_overrides: tuple[FindingCode, ...] = Field(
        default=(), max_length=20, description="Warning codes a coder confirms as intended"
    )


class TreatmentForm(StrictModel):
    form_type: Literal["treatment"] = "treatment"
    tumour_ref: TumourRef
    modality: Modality
    protocol: Label | None = None
    start_date: date
    end_date: date | None = None
    intent: Intent = Intent.CURATIVE


class Relapse(StrictModel):
    relapse_date: date
    site: Topography | None = None


class FollowUpForm(StrictModel):
    form_type: Literal["follow_up"] = "follow_up"
    tumour_ref: TumourRef
    last_contact_date: date
    vital_status: VitalStatus
    death_date: date | None = None
    relapse: Relapse | None = None
    late_effects: tuple[Label, ...] = Field(default=(), max_length=30)


Form = Annotated[DiagnosisForm | TreatmentForm | FollowUpForm, Field(discriminator="form_type")]
