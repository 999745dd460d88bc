"""Decoding a topic's bytes into its event model, strictly; and the key each event must be keyed by."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from shared.events import Event
from shared.topics import Key, TopicSpec

Decoder = Callable[[bytes], Any]
KeyOf = Callable[[Any], str]


def decoder_for(spec: TopicSpec) -> Decoder:
    """One event type: its strict `from_json`. Several: a union discriminated by `event_type`."""
    if not spec.events:
        raise ValueError(f"{spec.name} carries no platform events; give its consumer a decoder of its own")
    if len(spec.events) == 1:
        return spec.events[0].from_json
    union: Any = Annotated[Union[*spec.events], Field(discriminator="event_type")]
    adapter: TypeAdapter[Event] = TypeAdapter(union)
    return lambda data: adapter.validate_json(data, strict=True)


def key_of(spec: TopicSpec) -> KeyOf:
    """The key the platform's producers give an event of `spec`'s topic: the child's pseudonym for clinical
    events and reservations (all of a child's events in one partition, in order), the hospital id for
    receipts and reminders, the scope for snapshots."""
    if spec.key is Key.CHILD_PSEUDONYM:
        # Decided per class, once: `hasattr` on a pydantic model that lacks the field raises and catches an
        # AttributeError through pydantic's `__getattr__`, which cost more than decoding the key itself.
        direct = frozenset(event for event in spec.events if "child_pseudonym" in event.model_fields)
        return lambda event: event.child_pseudonym if type(event) in direct else event.child.pseudonym
    if spec.key is Key.HOSPITAL_ID:
        return lambda event: event.hospital_id
    if spec.key is Key.SCOPE:
        return lambda event: event.scope
    raise ValueError(f"{spec.name} is keyed by {spec.key.value}, which no event field holds")
