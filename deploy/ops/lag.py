"""Consumer lag: per group and partition, how far the committed offset is behind the end of the log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deploy.ops.clients import admin_client, consumer, topic_partitions
from deploy.ops.groups import GroupState, committed_offsets, describe_group, input_topics
from shared.settings import KafkaSettings


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here
    start: int  # log start offset
    end: int

    @property
    def lag(self) -> int:
        # Services start from the earliest record (auto_offset_reset=earliest): without a commit, or with
        # one behind the log start, everything still in the log is ahead of them.
        position = self.start if self.committed is None else max(self.committed, self.start)
        return max(0, self.end - position)


@dataclass(frozen=True, slots=True)
class GroupLag:
    group: GroupState
    partitions: tuple[PartitionLag, ...]
    missing_topics: tuple[str, ...] = ()  # a service's input topic that does not exist on the cluster

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)

    def topic_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for p in self.partitions:
            totals[p.topic] = totals.get(p.topic, 0) + p.lag
        return totals


async def consumer_lag(settings: KafkaSettings, groups: Sequence[str]) -> list[GroupLag]:
    """Lag of each group on its service's input topics and on any other topic of this environment (the
    topic prefix) where it committed offsets."""
    async with admin_client(settings) as admin:
        found = [(await describe_group(admin, g), await committed_offsets(admin, g)) for g in groups]
        wanted: dict[str, dict[str, None]] = {}
        for state, committed in found:
            wanted[state.group] = dict.fromkeys(input_topics(settings, state.group))
            elsewhere = {tp.topic for tp in committed if tp.topic.startswith(settings.topic_prefix)}
            wanted[state.group] |= dict.fromkeys(sorted(elsewhere))
        partitions = await topic_partitions(admin, [topic for topics in wanted.values() for topic in topics])
    every = [tp for tps in partitions.values() for tp in tps]
    async with consumer(settings) as client:
        start = await client.beginning_offsets(every) if every else {}
        end = await client.end_offsets(every) if every else {}
    results = []
    for state, committed in found:
        topics = wanted[state.group]
        rows = tuple(
            PartitionLag(tp.topic, tp.partition, committed.get(tp), start[tp], end[tp])
            for topic in topics
            for tp in partitions.get(topic, ())
        )
        results.append(GroupLag(state, rows, tuple(topic for topic in topics if topic not in partitions)))
    return results
