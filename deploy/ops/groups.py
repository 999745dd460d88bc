"""Consumer groups: which topics each service consumes, and who is in a group right now."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code

from deploy.ops import OpsError
from shared.settings import KafkaSettings
from shared.topics import ALL_TOPICS, TopicSpec

# Each service consumes as the consumer group named after it (`ServiceSettings.consumer_group`); intake
# reads the hospitals' inbound topic in a group of its own (`services.intake.handlers.inbound_group`), so
# that topic's offsets move independently of the decisions it consumes.
GROUP_INPUTS: dict[str, tuple[TopicSpec, ...]] = {
    group: tuple(spec for spec in ALL_TOPICS if group in spec.consumer_groups)
    for group in dict.fromkeys(g for spec in ALL_TOPICS for g in spec.consumer_groups)
}
SERVICE_GROUPS: dict[str, tuple[str, ...]] = {
    "intake": ("intake", "intake-inbound"),
    "validation": ("validation",),
    "stats": ("stats",),
    "export": ("export",),
}


def groups_of(name: str) -> list[str]:
    """A service's consumer groups; any other name is taken as a group's."""
    return list(SERVICE_GROUPS.get(name, (name,)))


def input_topics(settings: KafkaSettings, group: str) -> list[str]:
    """The topics a platform group consumes, as named on the cluster; none for a group of no service."""
    return [settings.topic(spec) for spec in GROUP_INPUTS.get(group, ())]


@dataclass(frozen=True, slots=True)
class Member:
    client_id: str
    host: str


@dataclass(frozen=True, slots=True)
class GroupState:
    group: str
    state: str  # as the coordinator says: Stable, PreparingRebalance, Empty, Dead (never seen)...
    members: tuple[Member, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.members)

    @property
    def label(self) -> str:
        # The coordinator calls a group it has no offsets or members for "Dead".
        return "not known to the broker yet" if self.state == "Dead" else self.state


async def describe_group(admin: AIOKafkaAdminClient, group: str) -> GroupState:
    # One group per request: aiokafka 0.14 misreads a DescribeGroups answer that holds several groups.
    [response] = await admin.describe_consumer_groups([group])
    [entry] = response.to_object()["groups"]
    if entry["error_code"]:
        raise OpsError(f"describing consumer group {group}: {for_code(entry['error_code']).__name__}")
    members = tuple(Member(m["client_id"], m["client_host"].lstrip("/")) for m in entry["members"])
    return GroupState(group, entry["state"], members)


async def committed_offsets(admin: AIOKafkaAdminClient, group: str) -> dict[TopicPartition, int]:
    """The group's committed offsets; partitions it never committed are absent."""
    offsets = await admin.list_consumer_group_offsets(group)
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
