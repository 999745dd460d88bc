"""`intake.reservations` (compacted): a family's NOPHO-Care reservation, keyed by the child's pseudonym.

The latest event per key is the child's current state, so compaction keeps exactly what export needs.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AwareDatetime, StringConstraints

from shared.events.base import Event, Pseudonym

StaffId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9._-]{1,63}$")]


class ReservationEvent(Event):
    schema_version: Literal[1] = 1
    producer: Literal["intake"] = "intake"

    reservation_id: uuid.UUID
    child_pseudonym: Pseudonym
    recorded_by: StaffId
    effective_at: AwareDatetime


class ReservationRegistered(ReservationEvent):
    event_type: Literal["reservation.registered"] = "reservation.registered"


class ReservationWithdrawn(ReservationEvent):
    event_type: Literal["reservation.withdrawn"] = "reservation.withdrawn"
