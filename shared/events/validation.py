"""`validation.submissions.validated` / `.rejected`: the coded, checked outcome of a received submission."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from shared.events.base import Event, HospitalId, StrictModel
from shared.events.forms import FindingCode, Form
from shared.events.submissions import Child


class Severity(StrEnum):
    ERROR = "error"  # rejects the form
    WARNING = "warning"  # an unlikely combination; accepted when a coder override confirms it
    QUERY = "query"  # accepted, flagged for review


class Finding(StrictModel):
    code: FindingCode
    severity: Severity
    fields: tuple[str, ...]
    message: str
    overridden: bool = False


class IcccCode(StrictModel):
    """ICCC-3 (IARC 2017) as SEER recodes it, with the roman labels registries read."""

    main_group: Annotated[str, StringConstraints(pattern=r"^(I|II|III|IV|V|VI|VII|VIII|IX|X|XI|XII)$")]
    subgroup: Annotated[str, StringConstraints(pattern=r"^[IVX]+[a-f]?$")]
    division: str | None = None  # e.g. IIIc.1
    recode: Annotated[str, StringConstraints(pattern=r"^\d{3}$")]  # SEER site recode, e.g. 031
    extended: Annotated[str, StringConstraints(pattern=r"^\d{3}$")]  # SEER extended recode


class ValidationOutcome(Event):
    """Fields both outcomes carry; the received submission's facts travel on so consumers need no join."""

    schema_version: Literal[1] = 1
    producer: Literal["validation"] = "validation"

    submission_id: uuid.UUID
    received_event_id: uuid.UUID
    hospital_id: HospitalId
    child: Child
    form: Form
    received_at: AwareDatetime
    report_id: uuid.UUID  # the report this submission is a version of (see `SubmissionReceived`)
    supersedes: uuid.UUID | None = None
    iccc: IcccCode | None = None
    findings: tuple[Finding, ...] = Field(default=())


class SubmissionValidated(ValidationOutcome):
    event_type: Literal["submission.validated"] = "submission.validated"


class SubmissionRejected(ValidationOutcome):
    event_type: Literal["submission.rejected"] = "submission.rejected"
