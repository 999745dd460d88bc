"""The envelope every event on every topic carries, and the strictness they all share.

Wire data is decoded with `from_json`, in pydantic's strict mode: it still accepts ISO strings for
dates, datetimes and UUIDs and enum values, but refuses `"3"` for an int, and every model forbids fields
it does not know. Code that builds events in Python gets the usual conversions (`"male"` -> `Sex.MALE`).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

ServiceName = Literal["intake", "validation", "stats", "export", "operator"]

# The child's keyed registry pseudonym (HMAC-SHA256, base32): never the identity number itself.
Pseudonym = Annotated[str, StringConstraints(pattern=r"^[a-z2-7]{26,52}$")]
HospitalId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,31}$")]
# Chosen by the hospital so that later forms can refer to the tumour; unique within that hospital.
TumourRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]

# Deterministic ids for derived events: reprocessing an input yields the same output event id,
# so a consumer that dedupes on event ids sees a republished output as the duplicate it is.
_DERIVED_NAMESPACE = uuid.UUID("6f1d2a52-8a0e-4f0b-9e55-2b7f3c0f9a11")
_NAMESPACE_BYTES = _DERIVED_NAMESPACE.bytes


def derived_event_id(source: uuid.UUID | str, purpose: str) -> uuid.UUID:
    # `uuid.uuid5(_DERIVED_NAMESPACE, f"{source}:{purpose}")`, without its per-call import and namespace
    # encoding: once per outcome event, a twentieth of validation's CPU. The ids must never change.
    digest = hashlib.sha1(_NAMESPACE_BYTES + f"{source}:{purpose}".encode()).digest()
    return uuid.UUID(bytes=digest[:16], version=5)


def utcnow() -> datetime:
    return datetime.now(UTC)


class StrictModel(BaseModel):
    """Unknown fields are errors, never silently dropped; decode wire data with `from_json` (strict)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        return cls.model_validate_json(data, strict=True)

    def to_json(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self)


class Event(StrictModel):
    """Envelope fields. Subclasses pin `event_type` and `schema_version` with a Literal default."""

    topic_key_field: ClassVar[str | None] = None

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event_type: str
    schema_version: int
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    producer: ServiceName

    def derive(self, purpose: str) -> dict[str, Any]:
        """Envelope arguments for an event derived from this one (see `derived_event_id`)."""
        return {"event_id": derived_event_id(self.event_id, purpose)}
