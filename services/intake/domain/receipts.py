"""The receipt of a submission and how its status may move.

    received ──► accepted
        │           ▲ │
        ▼           │ ▼
      rejected ─────┘

Validation decides once per received event, but a replay after a coding-table update may decide again:
a newer decision replaces an older one, a stale or repeated one changes nothing, and nothing goes back to
`received`. Receipt events get ids derived from what caused them, so republishing one is a duplicate.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.intake.domain.submissions import Issue
from shared.events import Finding, ReceiptIssued, ReceiptStatus, Severity
from shared.events.base import derived_event_id
from shared.events.forms import FormType


@dataclass(frozen=True, slots=True)
class ReceiptState:
    status: ReceiptStatus
    decided_at: datetime | None


def should_apply(current: ReceiptState, decision: ReceiptStatus, decided_at: datetime) -> bool:
    """Whether validation's `decision` made at `decided_at` changes the receipt."""
    if decision is ReceiptStatus.RECEIVED:
        raise ValueError("a decision is accepted or rejected")
    if current.status is ReceiptStatus.RECEIVED or current.decided_at is None:
        return True
    return decided_at > current.decided_at


def received_receipt(
    submission_id: uuid.UUID, hospital_id: str, form_type: FormType, received_at: datetime
) -> ReceiptIssued:
    return ReceiptIssued(
        event_id=derived_event_id(submission_id, "receipt:received"),
        occurred_at=received_at,
        submission_id=submission_id,
        hospital_id=hospital_id,
        form_type=form_type,
        status=ReceiptStatus.RECEIVED,
        received_at=received_at,
    )


def decided_receipt(
    decision_event_id: uuid.UUID,
    submission_id: uuid.UUID,
    hospital_id: str,
    form_type: FormType,
    status: ReceiptStatus,
    received_at: datetime,
    decided_at: datetime,
    findings: Sequence[Finding],
) -> ReceiptIssued:
    return ReceiptIssued(
        event_id=derived_event_id(decision_event_id, "receipt"),
        occurred_at=decided_at,
        submission_id=submission_id,
        hospital_id=hospital_id,
        form_type=form_type,
        status=status,
        received_at=received_at,
        decided_at=decided_at,
        findings=tuple(findings),
    )


def refusal_findings(issues: Sequence[Issue]) -> tuple[Finding, ...]:
    return tuple(
        Finding(code=issue.code, severity=Severity.ERROR, fields=(issue.field,), message=issue.reason)
        for issue in issues
    )


def refused_receipt(
    submission_id: uuid.UUID,
    hospital_id: str,
    form_type: FormType,
    message_digest: str,
    at: datetime,
    issues: Sequence[Issue],
) -> ReceiptIssued:
    """The answer to an inbound-topic message intake could not register (the HTTP API answers 422).
    Its id comes from the message's content: a redelivered message yields the same receipt event."""
    return ReceiptIssued(
        event_id=derived_event_id(submission_id, f"receipt:refused:{message_digest}"),
        occurred_at=at,
        submission_id=submission_id,
        hospital_id=hospital_id,
        form_type=form_type,
        status=ReceiptStatus.REJECTED,
        received_at=at,
        decided_at=at,
        findings=refusal_findings(issues),
    )
