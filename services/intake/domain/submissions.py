"""What intake itself decides about a hospital's message before it becomes `SubmissionReceived`.

Intake refuses what it cannot register: a body that does not match the schema, an identity number that
is not one, a form contradicting that number, a tumour reference the hospital already uses for another
child, a correction naming what it cannot correct, a correction older than what it corrects. Clinical
plausibility (date order, code combinations) is validation's job, so such a form still gets a receipt
and then a rejection with reasons.
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
from shared.events import SubmissionReceived
from shared.events.base import derived_event_id
from shared.events.forms import DiagnosisForm, FormType
from shared.events.submissions import Channel, Child, HospitalSubmission

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
    report_id: uuid.UUID
    supersedes: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a submission stands among its tumour's reports: the report it is a version of (the first
    submission of its chain of corrections) and the version it corrects, if it is a correction."""

    report_id: uuid.UUID
    supersedes: uuid.UUID | None = None


def supersession(
    submission: HospitalSubmission, child_pseudonym: str, earlier: Sequence[Precedent]
) -> tuple[Lineage, list[Issue]]:
    """Which report this submission is a version of, and which submission it corrects, if any.

    `earlier`: the hospital's submissions with the same tumour reference, in receipt order. A tumour has
    one diagnosis: a later diagnosis form corrects the current one (and may name it in `corrects`). A
    treatment or follow-up form is a report of its own unless `corrects` names the submission it
    corrects: an earlier one of the same form type about the same tumour that nothing corrects yet. A
    tumour reference belongs to one child; a correction must not be older than what it corrects, or a
    delayed resend would overwrite a newer correction."""
    issues = []
    if any(p.child_pseudonym != child_pseudonym for p in earlier):
        issues.append(
            Issue("form.tumour_ref", "is already used by this hospital for another child", "TUMOUR_REF_OTHER_CHILD")
        )
    corrected, refusal = _corrected(submission, earlier)
    if refusal is not None:
        issues.append(refusal)
    if corrected is None:
        return Lineage(submission.submission_id), issues
    if submission.made_at < corrected.made_at:
        issues.append(
            Issue(
                "made_at",
                f"is older than that of submission {corrected.submission_id}, which it would correct",
                "CORRECTION_OLDER_THAN_ORIGINAL",
            )
        )
    return Lineage(corrected.report_id, corrected.submission_id), issues


def received_event(
    submission: HospitalSubmission,
    identity: NationalIdentity,
    pseudonym: str,
    lineage: Lineage,
    channel: Channel,
    received_at: datetime,
) -> SubmissionReceived:
    """The event that intake received `submission` (validation's input), about the child `pseudonym`
    stands for. Its id comes from the submission's: registering it again yields the same event."""
    return SubmissionReceived(
        event_id=derived_event_id(submission.submission_id, "received"),
        occurred_at=received_at,
        submission_id=submission.submission_id,
        hospital_id=submission.hospital_id,
        child=Child(pseudonym=pseudonym, birth_date=identity.birth_date, sex=identity.sex),
        form_version=submission.form_version,
        form=submission.form,
        made_at=submission.made_at,
        received_at=received_at,
        channel=channel,
        report_id=lineage.report_id,
        supersedes=lineage.supersedes,
    )


def _corrected(submission: HospitalSubmission, earlier: Sequence[Precedent]) -> tuple[Precedent | None, Issue | None]:
    """The submission `submission` corrects, or why the one it names cannot be corrected by it."""
    form_type = FormType(submission.form.form_type)
    corrected_by = {p.supersedes: p.submission_id for p in earlier if p.supersedes is not None}
    named = submission.corrects
    if named is None:
        if form_type is not FormType.DIAGNOSIS:
            return None, None  # a report of its own
        current = [p for p in earlier if p.form_type is FormType.DIAGNOSIS and p.submission_id not in corrected_by]
        return (current[-1] if current else None), None
    target = next((p for p in earlier if p.submission_id == named), None)
    if target is None:
        reason = f"names no earlier submission of this hospital with tumour reference {submission.form.tumour_ref!r}"
        return None, Issue("corrects", reason, "CORRECTS_UNKNOWN_SUBMISSION")
    if target.form_type is not form_type:
        reason = f"names a {target.form_type.value} form; a {form_type.value} form corrects a {form_type.value} form"
        return None, Issue("corrects", reason, "CORRECTS_OTHER_FORM_TYPE")
    if named in corrected_by:
        latest = named
        while latest in corrected_by:
            latest = corrected_by[latest]
        reason = (
            f"names submission {named}, which submission {corrected_by[named]} already corrects;"
            f" a correction names the report's current version, {latest}"
        )
        return None, Issue("corrects", reason, "CORRECTS_CORRECTED_SUBMISSION")
    return target, None


def canonical(submission: HospitalSubmission) -> str:
    """The message's meaning as one string: the same submission sent with other whitespace, key order or
    time zone notation yields the same text, so only a real difference is a conflict."""
    data: dict[str, Any] = submission.model_dump(mode="json")
    data["made_at"] = submission.made_at.timestamp()
    if data["corrects"] is None:
        del data["corrects"]  # absent or null alike; and digests of messages stored before the field stay
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
