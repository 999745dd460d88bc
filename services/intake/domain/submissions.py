"""What intake itself decides about a hospital's message before it becomes `SubmissionReceived`.

Intake refuses what it cannot register: a body that does not match the schema, an identity number that
is not one, a form contradicting that number, a tumour reference the hospital already uses for another
child, a correction older than what it corrects. Clinical plausibility (date order, code combinations)
is validation's job, so such a form still gets a receipt and then a rejection with reasons.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from services.intake.domain.identity import NationalIdentity
from shared.events.forms import DiagnosisForm, FormType
from shared.events.submissions import HospitalSubmission

_FORM_TAGS = {t.value for t in FormType}


@dataclass(frozen=True, slots=True)
class Issue:
    """One thing wrong with a message: the field (dotted path), why, and a finding code for receipts."""

    field: str
    reason: str
    code: str = "INVALID_FIELD"


class Refused(Exception):
    """The message cannot be registered; `issues` say why, field by field."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        super().__init__("; ".join(f"{i.field}: {i.reason}" for i in issues))
        self.issues = tuple(issues)


def schema_issues(error: ValidationError) -> list[Issue]:
    """Pydantic's errors as issues, without the offending input (it may be an identity number).

    The discriminator's tag pydantic puts in the path (`form.diagnosis.sex`) is dropped: the hospital
    wrote `form.sex`.
    """
    issues = []
    for err in error.errors(include_input=False, include_url=False):
        loc = [str(part) for part in err["loc"]]
        if len(loc) > 1 and loc[0] == "form" and loc[1] in _FORM_TAGS:
            del loc[1]
        code = "MALFORMED_JSON" if err["type"] == "json_invalid" else "INVALID_FIELD"
        issues.append(Issue(".".join(loc) or "<body>", err["msg"], code))
    return issues


def parse_submission(body: bytes | str) -> HospitalSubmission:
    """Strict decoding: `"3"` is not an int, unknown fields are errors. Raises `Refused`."""
    try:
        return HospitalSubmission.model_validate_json(body, strict=True)
    except ValidationError as error:
        raise Refused(schema_issues(error)) from None


def check_submission(
    submission: HospitalSubmission,
    identity: NationalIdentity,
    *,
    now: datetime,
    clock_skew: timedelta,
    hospitals: Collection[str],
) -> list[Issue]:
    """The checks that need nothing stored: the hospital, the form against the identity, the clock."""
    issues = []
    if submission.hospital_id not in hospitals:
        issues.append(Issue("hospital_id", "is not a hospital known to the registry", "UNKNOWN_HOSPITAL"))
    declared = submission.patient.birth_date
    if declared is not None and declared != identity.birth_date:
        issues.append(
            Issue(
                "patient.birth_date",
                "contradicts the birth date encoded in the identity number",
                "BIRTH_DATE_CONTRADICTS_IDENTITY",
            )
        )
    form = submission.form
    if isinstance(form, DiagnosisForm) and form.sex != identity.sex:
        issues.append(
            Issue("form.sex", "contradicts the legal sex encoded in the identity number", "SEX_CONTRADICTS_IDENTITY")
        )
    if submission.made_at > now + clock_skew:
        issues.append(Issue("made_at", "is in the future", "MADE_IN_FUTURE"))
    return issues


@dataclass(frozen=True, slots=True)
class Precedent:
    """An earlier submission of the same hospital with the same tumour reference."""

    submission_id: uuid.UUID
    child_pseudonym: str
    form_type: FormType
    made_at: datetime


def supersession(
    submission: HospitalSubmission, child_pseudonym: str, earlier: Sequence[Precedent]
) -> tuple[uuid.UUID | None, list[Issue]]:
    """Which submission this one corrects, if any: the latest (`earlier` is in receipt order) of the same
    form type for the same tumour. A tumour reference belongs to one child; a correction must not be
    older than what it corrects, or a delayed resend would overwrite a newer correction."""
    issues = []
    if any(p.child_pseudonym != child_pseudonym for p in earlier):
        issues.append(
            Issue("form.tumour_ref", "is already used by this hospital for another child", "TUMOUR_REF_OTHER_CHILD")
        )
    same_type = [p for p in earlier if p.form_type == submission.form.form_type]
    if not same_type:
        return None, issues
    latest = same_type[-1]
    if submission.made_at < latest.made_at:
        issues.append(
            Issue(
                "made_at",
                f"is older than that of submission {latest.submission_id}, which it would correct",
                "CORRECTION_OLDER_THAN_ORIGINAL",
            )
        )
    return latest.submission_id, issues


def canonical(submission: HospitalSubmission) -> str:
    """The message's meaning as one string: the same submission sent with other whitespace, key order or
    time zone notation yields the same text, so only a real difference is a conflict."""
    data: dict[str, Any] = submission.model_dump(mode="json")
    data["made_at"] = submission.made_at.timestamp()
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
