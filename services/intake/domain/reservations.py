"""NOPHO-Care reservations: a family's objection to the transfer of their child's data.

A child has at most one active reservation. Registering again while one is active returns it unchanged;
withdrawing needs an active one. Events are keyed by the child's pseudonym on a compacted topic, so the
latest event per child is the child's state.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, Field

from shared.events import ReservationRegistered, ReservationWithdrawn
from shared.events.base import StrictModel, derived_event_id
from shared.events.submissions import NationalId

_STAFF_ID = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")


class ReservationStatus(StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


class ReservationRequest(StrictModel):
    national_id: NationalId
    effective_at: AwareDatetime | None = Field(None, description="When the family reserved; default: now")


class ChildRequest(StrictModel):
    national_id: NationalId


def staff_id(token_name: str) -> str:
    """The staff member as the reservation events name them (`recorded_by`), from the token's holder."""
    candidate = re.sub(r"[^a-z0-9._-]+", "-", token_name.lower()).strip("-._")[:64]
    return candidate if _STAFF_ID.match(candidate) else f"staff-{candidate}"[:64]


def registered_event(
    reservation_id: uuid.UUID, pseudonym: str, recorded_by: str, effective_at: datetime, at: datetime
) -> ReservationRegistered:
    return ReservationRegistered(
        event_id=derived_event_id(reservation_id, "registered"),
        occurred_at=at,
        reservation_id=reservation_id,
        child_pseudonym=pseudonym,
        recorded_by=recorded_by,
        effective_at=effective_at,
    )


def withdrawn_event(reservation_id: uuid.UUID, pseudonym: str, recorded_by: str, at: datetime) -> ReservationWithdrawn:
    return ReservationWithdrawn(
        event_id=derived_event_id(reservation_id, "withdrawn"),
        occurred_at=at,
        reservation_id=reservation_id,
        child_pseudonym=pseudonym,
        recorded_by=recorded_by,
        effective_at=at,
    )
