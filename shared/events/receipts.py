"""`intake.receipts`: the registry's answer to every submitted message, keyed by hospital."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime

from shared.events.base import Event, HospitalId
from shared.events.forms import FormType
from shared.events.validation import Finding


class ReceiptStatus(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class ReceiptIssued(Event):
    event_type: Literal["receipt.issued"] = "receipt.issued"
    schema_version: Literal[1] = 1
    producer: Literal["intake"] = "intake"

    submission_id: uuid.UUID
    hospital_id: HospitalId
    form_type: FormType
    status: ReceiptStatus
    received_at: AwareDatetime
    decided_at: AwareDatetime | None = None
    findings: tuple[Finding, ...] = ()
