"""Decoding a topic's bytes into its event model, strictly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from shared.events import Event
from shared.topics import TopicSpec

Decoder = Callable[[bytes], Any]


def decoder_for(spec: TopicSpec) -> Decoder:
    """One event type: its strict `from_json`. Several: a union discriminated by `event_type`."""
    if not spec.events:
        raise ValueError(f"{spec.name} carries no platform events; give its consumer a decoder of its own")
    if len(spec.events) == 1:
        return spec.events[0].from_json
    union: Any = Annotated[Union[*spec.events], Field(discriminator="event_type")]
    adapter: TypeAdapter[Event] = TypeAdapter(union)
    return lambda data: adapter.validate_json(data, strict=True)
