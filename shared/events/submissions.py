"""`intake.submissions.received`: a hospital's form, accepted by intake, with the child pseudonymised."""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime

from shared.events.base import Event, HospitalId, Pseudonym, StrictModel
from shared.events.forms import Form, Sex


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
    # The earlier submission of the same form type for the same tumour that this one corrects.
    supersedes: uuid.UUID | None = None
