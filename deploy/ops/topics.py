"""The platform's topics: create them with their settings, describe what the cluster has."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from deploy.ops import OpsError
from deploy.ops.clients import admin_client
from shared.kafka.admin import create_missing
from shared.settings import KafkaSettings
from shared.topics import ALL_TOPICS, TopicSpec

# The topic settings an operator cares about; the spec fixes the first and the settings the second.
CONFIG_NAMES = ("cleanup.policy", "min.insync.replicas", "retention.ms")


def resolve(settings: KafkaSettings, name: str) -> tuple[str, TopicSpec | None]:
    """A topic's name on the cluster and its spec, from its platform name (`intake.receipts`) or its
    prefixed name; a topic that is not the platform's has no spec."""
    for spec in ALL_TOPICS:
        if name in (spec.name, settings.topic(spec)):
            return settings.topic(spec), spec
    return name, None


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    partition: int
    leader: int  # -1: no leader, the partition is offline
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def under_replicated(self) -> bool:
        return len(self.isr) < len(self.replicas)


@dataclass(frozen=True, slots=True)
class TopicDescription:
    name: str
    spec: TopicSpec | None
    exists: bool
    partitions: tuple[PartitionInfo, ...] = ()
    config: dict[str, str] = field(default_factory=dict)

    def drift(self, settings: KafkaSettings) -> list[str]:
        """How the topic on the cluster differs from what `registry topics create` would make."""
        if self.spec is None or not self.exists:
            return []
        found: list[str] = []
        if len(self.partitions) != self.spec.partitions:
            found.append(f"{len(self.partitions)} partitions, the platform declares {self.spec.partitions}")
        replication = len(self.partitions[0].replicas) if self.partitions else 0
        if replication != settings.replication_factor:
            found.append(f"replication factor {replication}, KAFKA_REPLICATION_FACTOR is {settings.replication_factor}")
        expected = self.spec.config(settings.min_insync_replicas)
        for name in CONFIG_NAMES:
            if name in self.config and self.config[name] != expected[name]:
                found.append(f"{name}={self.config[name]}, expected {expected[name]}")
        return found


@dataclass(frozen=True, slots=True)
class TopicCreation:
    name: str
    outcome: Literal["created", "present", "failed"]
    detail: str = ""  # why creating failed, or how a present topic differs from its declaration


async def create_topics(settings: KafkaSettings, topics: Sequence[TopicSpec] = ALL_TOPICS) -> list[TopicCreation]:
    """Create the platform's topics that are missing, with the partitions and cleanup policy of their spec
    and the replication factor and min ISR of the settings. Existing topics are never altered (moving a
    keyed topic to more partitions would move children between partitions), only reported."""
    async with admin_client(settings) as admin:
        created_names, errors = await create_missing(admin, settings, topics)
        created = set(created_names)
        present = [settings.topic(spec) for spec in topics if settings.topic(spec) not in created | errors.keys()]
        described = {d.name: d for d in await _describe(admin, settings, present)}
    results = []
    for spec in topics:
        name = settings.topic(spec)
        if name in errors:
            results.append(TopicCreation(name, "failed", errors[name]))
        elif name in created:
            results.append(TopicCreation(name, "created"))
        else:
            results.append(TopicCreation(name, "present", "; ".join(described[name].drift(settings))))
    return results


async def describe_topics(settings: KafkaSettings, names: Iterable[str] | None = None) -> list[TopicDescription]:
    """The named topics (platform or prefixed names), or every platform topic."""
    if names is None:
        wanted = [settings.topic(spec) for spec in ALL_TOPICS]
    else:
        wanted = [resolve(settings, name)[0] for name in names]
    async with admin_client(settings) as admin:
        return await _describe(admin, settings, wanted)


async def _describe(admin: AIOKafkaAdminClient, settings: KafkaSettings, names: list[str]) -> list[TopicDescription]:
    if not names:
        return []
    metadata = {entry["topic"]: entry for entry in await admin.describe_topics(names)}
    present = [name for name in names if name in metadata and not metadata[name]["error_code"]]
    configs: dict[str, dict[str, str]] = {name: {} for name in present}
    if present:
        wanted = dict.fromkeys(CONFIG_NAMES)
        for response in await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, wanted) for name in present]
        ):
            for resource in response.to_object()["resources"]:
                if resource["error_code"]:
                    raise OpsError(f"describing {resource['resource_name']}: {resource['error_message']}")
                for entry in resource["config_entries"]:
                    configs[resource["resource_name"]][entry["config_names"]] = entry["config_value"]
    descriptions = []
    for name in names:
        spec = resolve(settings, name)[1]
        if name not in configs:
            descriptions.append(TopicDescription(name, spec, exists=False))
            continue
        partitions = tuple(
            PartitionInfo(p["partition"], p["leader"], tuple(p["replicas"]), tuple(p["isr"]))
            for p in sorted(metadata[name]["partitions"], key=lambda p: p["partition"])
        )
        descriptions.append(TopicDescription(name, spec, True, partitions, configs[name]))
    return descriptions
