"""Drafts: a hospital's form kept in intermediate storage, incomplete until it is submitted.

A draft's content is checked only at its top level (so a typo in a section name is caught at once);
the patient and form sections may be partial. Submitting assembles the full message and runs it through
the same strict parsing and rules as any other submission.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, Field, JsonValue

from services.intake.domain.submissions import parse_submission
from shared.events.base import HospitalId, StrictModel
from shared.events.forms import FormType
from shared.events.submissions import HospitalSubmission

_FORM_TYPES = {t.value for t in FormType}


class DraftContent(StrictModel):
    form_version: Literal[1] = 1
    made_at: AwareDatetime | None = Field(None, description="Defaults to the draft's last update")
    patient: dict[str, JsonValue] = Field(default_factory=dict)
    form: dict[str, JsonValue] = Field(default_factory=dict)
    corrects: uuid.UUID | None = Field(None, description="The submission the draft corrects, as in a submission")


class NewDraft(StrictModel):
    hospital_id: HospitalId
    content: DraftContent


class DraftUpdate(StrictModel):
    content: DraftContent


class SubmitDraft(StrictModel):
    submission_id: uuid.UUID = Field(description="The idempotency key of the submission the draft becomes")


def draft_labels(content: DraftContent) -> tuple[FormType | None, str | None]:
    """Form type and tumour reference for listing drafts, where the partial form already names them."""
    form_type = content.form.get("form_type")
    tumour_ref = content.form.get("tumour_ref")
    return (
        FormType(form_type) if isinstance(form_type, str) and form_type in _FORM_TYPES else None,
        tumour_ref if isinstance(tumour_ref, str) and len(tumour_ref) <= 64 else None,
    )


def assemble(
    content: DraftContent, *, submission_id: uuid.UUID, hospital_id: str, updated_at: datetime
) -> HospitalSubmission:
    """The submission a draft becomes; raises `Refused` with the fields still missing or wrong."""
    body: dict[str, Any] = {
        "submission_id": str(submission_id),
        "hospital_id": hospital_id,
        "form_version": content.form_version,
        "made_at": (content.made_at or updated_at).isoformat(),
        "patient": content.patient,
        "form": content.form,
    }
    if content.corrects is not None:
        body["corrects"] = str(content.corrects)
    return parse_submission(json.dumps(body))
