"""`intake.submissions.received`: a hospital's form, accepted by intake, with the child pseudonymised.

Also the hospital's own message (`HospitalSubmission`): the body of intake's submission API and of the
records hospitals produce to `hospital.inbound.submissions`. It is the one model that carries the
national identity number, and only intake reads it.
"""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from shared.events.base import Event, HospitalId, Pseudonym, StrictModel
from shared.events.forms import Form, Sex

NationalId = Annotated[
    str,
    StringConstraints(pattern=r"^\d{11}$"),
    Field(
        repr=False,  # never in a repr, a log line or a traceback
        description="The child's Norwegian national identity number (fødselsnummer or D-number), 11 digits",
        examples=["15108695088"],
    ),
]


class Channel(StrEnum):
    HTTP = "http"
    KAFKA = "kafka"


class Child(StrictModel):
    """What downstream services may know about the child: never the identity number or a name."""

    pseudonym: Pseudonym
    birth_date: date
    sex: Sex  # legal sex derived from the identity number


class SubmissionReceived(Event):
    event_type: Literal["submission.received"] = "submission.received"
    schema_version: Literal[1] = 1
    producer: Literal["intake"] = "intake"

    submission_id: uuid.UUID
    hospital_id: HospitalId
    child: Child
    form_version: int
    form: Form
    made_at: AwareDatetime  # when the hospital made the form
    received_at: AwareDatetime  # when intake accepted it (the receipt's time)
    channel: Channel
    # The report this submission is a version of: the submission id of the first in its chain of
    # corrections (its own id for an original). A tumour has one diagnosis report and any number of
    # treatment and follow-up reports; each report is one chain.
    report_id: uuid.UUID
    # The submission this one corrects: the previous version of the same report (None for an original).
    supersedes: uuid.UUID | None = None


class PatientIdentity(StrictModel):
    national_id: NationalId
    # Optional: when the hospital states it, intake checks it against the identity number.
    birth_date: date | None = None


class HospitalSubmission(StrictModel):
    """A hospital's message: one form about one child. `submission_id` is the idempotency key."""

    submission_id: uuid.UUID = Field(description="Chosen by the hospital; resending the same message is harmless")
    hospital_id: HospitalId
    form_version: Literal[1] = Field(description="Version of the form models; 1 is the only one so far")
    made_at: AwareDatetime = Field(description="When the hospital made the form")
    patient: PatientIdentity
    form: Form
    corrects: uuid.UUID | None = Field(
        None,
        description="The submission this one corrects: an earlier submission of this hospital with the same"
        " tumour reference and form type, not corrected yet. Required to correct a treatment or follow-up"
        " report (without it, such a form is a report of its own); a later diagnosis for the same tumour"
        " corrects the current one anyway, and may name it here.",
    )
