"""Replay: move a stopped service's committed offsets back, so it consumes its inputs again.

Effects are idempotent (each service claims processed event ids in the effect's transaction), so a replay
re-derives what was lost or changed (a projection dropped, a coding table updated) without counting
anything twice. A replay never moves a group forward, so it never skips a record. The broker accepts a
commit from outside the group only while the group has no members, which is why the service has to be
stopped first; that is checked before and enforced by the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalGenerationError, UnknownMemberIdError

from deploy.ops import OpsError
from deploy.ops.clients import admin_client, consumer, partitions_of
from deploy.ops.groups import GroupState, committed_offsets, describe_group, groups_of, input_topics
from deploy.ops.topics import resolve
from shared.settings import KafkaSettings


class GroupActiveError(OpsError):
    def __init__(self, state: GroupState) -> None:
        if state.members:
            who = ", ".join(f"{m.client_id}@{m.host}" for m in state.members)
            what = f"consumer group {state.group} is {state.state} with {len(state.members)} member(s) ({who})"
        else:
            what = f"a member joined consumer group {state.group} while its offsets were being reset"
        super().__init__(
            f"{what}. Stop every {state.group} process first (Ctrl-C `registry up`, `registry down`, or scale "
            "its deployment to 0), then replay."
        )
        self.state = state


def parse_time(text: str) -> datetime:
    """An ISO 8601 instant with its offset: a replay to a wall-clock time in an unknown zone could be
    an hour off, so a time without one is refused."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise OpsError(
            f"{text!r} is not an ISO 8601 time, e.g. 2026-01-31T00:00:00+01:00 or 2026-01-30T23:00Z"
        ) from exc
    if moment.tzinfo is None:
        raise OpsError(f"{text!r} has no UTC offset; add one, e.g. {text}Z or {text}+01:00")
    return moment


def replay_scope(settings: KafkaSettings, name: str, topics: Sequence[str] = ()) -> dict[str, list[str]]:
    """The groups to reset and their topics: for a service, each of its groups on its inputs, or on the
    given topics, which must be among them. A group that is no platform group has no known inputs, so
    its topics must be given."""
    wanted = list(dict.fromkeys(resolve(settings, topic)[0] for topic in topics))
    scope: dict[str, list[str]] = {}
    for group in groups_of(name):
        inputs = input_topics(settings, group)
        if not inputs:
            if not wanted:
                raise OpsError(f"{group} is no platform consumer group; name the topics to reset with --topic")
            return {group: wanted}
        if chosen := [topic for topic in inputs if not wanted or topic in wanted]:
            scope[group] = chosen
    consumed = {topic for chosen in scope.values() for topic in chosen}
    if foreign := [topic for topic in wanted if topic not in consumed]:
        everything = [topic for group in groups_of(name) for topic in input_topics(settings, group)]
        raise OpsError(f"{name} does not consume {', '.join(foreign)}; it consumes {', '.join(everything)}")
    return scope


def replay_target(start: int, committed: int | None, wanted: int) -> int:
    """The offset to commit: `wanted`, but never ahead of where the group is (a group that never committed
    starts at the log start), so a replay never skips records the service has not processed yet."""
    position = start if committed is None else max(committed, start)
    return min(wanted, position)


@dataclass(frozen=True, slots=True)
class Reset:
    topic: str
    partition: int
    start: int  # log start offset
    current: int | None  # the committed offset now; None if the group never committed here
    target: int
    end: int

    @property
    def again(self) -> int:
        """Records the service already processed and will process again."""
        position = self.start if self.current is None else max(self.current, self.start)
        return position - self.target

    @property
    def ahead(self) -> int:
        """Records ahead of the group after the reset."""
        return self.end - self.target


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    group: str
    to_time: datetime | None  # None: to the beginning
    resets: tuple[Reset, ...]

    @property
    def again(self) -> int:
        return sum(r.again for r in self.resets)


async def plan_replay(
    settings: KafkaSettings, group: str, topics: Sequence[str], to_time: datetime | None = None
) -> ReplayPlan:
    """The offsets a replay would commit; refuses while the group has members."""
    async with admin_client(settings) as admin:
        state = await describe_group(admin, group)
        if state.active:
            raise GroupActiveError(state)
        committed = await committed_offsets(admin, group)
    partitions = await partitions_of(settings, topics)
    async with consumer(settings) as client:
        start = await client.beginning_offsets(partitions)
        end = await client.end_offsets(partitions)
        if to_time is None:
            wanted = start
        else:
            at = await client.offsets_for_times(dict.fromkeys(partitions, int(to_time.timestamp() * 1000)))
            # No record that recent: the end, so nothing is replayed there.
            wanted = {tp: end[tp] if hit is None else hit.offset for tp, hit in at.items()}
    resets = tuple(
        Reset(
            tp.topic,
            tp.partition,
            start[tp],
            committed.get(tp),
            replay_target(start[tp], committed.get(tp), wanted[tp]),
            end[tp],
        )
        for tp in partitions
    )
    return ReplayPlan(group, to_time, resets)


async def apply_replay(settings: KafkaSettings, plan: ReplayPlan) -> None:
    """Commit the plan's offsets for its group, as long as the group still has no members."""
    async with admin_client(settings) as admin:
        state = await describe_group(admin, plan.group)
    if state.active:  # started again while the operator read the plan
        raise GroupActiveError(state)
    offsets = {TopicPartition(r.topic, r.partition): r.target for r in plan.resets}
    async with consumer(settings, plan.group) as client:
        client.assign(list(offsets))
        try:
            await client.commit(offsets)
        except (CommitFailedError, IllegalGenerationError, UnknownMemberIdError) as exc:
            # The broker refuses a commit from outside a group that has members: one joined just now.
            async with admin_client(settings) as admin:
                raise GroupActiveError(await describe_group(admin, plan.group)) from exc
