"""Versioned event contracts: one pydantic model per event type on every topic."""

from shared.events.base import Event, StrictModel, derived_event_id
from shared.events.deadletter import DeadLetter
from shared.events.forms import DiagnosisForm, FollowUpForm, Form, FormType, TreatmentForm
from shared.events.receipts import ReceiptIssued, ReceiptStatus
from shared.events.reservations import ReservationRegistered, ReservationWithdrawn
from shared.events.stats import ReminderChanged, StatsSnapshot
from shared.events.submissions import Child, SubmissionReceived
from shared.events.validation import Finding, IcccCode, Severity, SubmissionRejected, SubmissionValidated

__all__ = [
    "Child",
    "DeadLetter",
    "DiagnosisForm",
    "Event",
    "Finding",
    "FollowUpForm",
    "Form",
    "FormType",
    "IcccCode",
    "ReceiptIssued",
    "ReceiptStatus",
    "ReminderChanged",
    "ReservationRegistered",
    "ReservationWithdrawn",
    "Severity",
    "StatsSnapshot",
    "StrictModel",
    "SubmissionReceived",
    "SubmissionRejected",
    "SubmissionValidated",
    "TreatmentForm",
    "derived_event_id",
]
