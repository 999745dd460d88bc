"""The operator commands on a real broker: topics, lag, dead letters and their redrive, replay.

Each test works on its own topic prefix (the `kafka_settings` fixture) and, where it needs a consumer group,
on a group of its own, so it never sees another test's offsets. The commands' CLI layer is driven through
Typer's runner in a thread (it runs its own event loop), the logic directly.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.partitioner import DefaultPartitioner
from typer.testing import CliRunner, Result

import deploy.ops.replay
from deploy.cli import app
from deploy.cli.topics import console
from deploy.ops import OpsError
from deploy.ops.clients import consumer, read_at
from deploy.ops.deadletters import (
    LetterId,
    SealedError,
    fetch_letter,
    list_dead_letters,
    original_value,
    plan_redrive,
    readable,
    redrive,
)
from deploy.ops.groups import GroupState
from deploy.ops.lag import consumer_lag
from deploy.ops.replay import GroupActiveError, apply_replay, parse_time, plan_replay
from deploy.ops.topics import create_topics, describe_topics
from services.intake.crypto import Purpose, Sealer
from shared.kafka import create_broker
from shared.kafka.deadletters import DeadLetterPublisher
from shared.settings import KafkaSettings
from shared.topics import ALL_TOPICS, DEAD_LETTERS, HOSPITAL_INBOUND, SUBMISSIONS_RECEIVED, Cleanup

pytestmark = pytest.mark.kafka

VAULT_KEY = bytes(range(32, 64))
VAULT_KEY_ENV = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="  # url-safe base64 of VAULT_KEY
HEADERS = [("content-type", b"application/json"), ("trace", b"\x00\x01")]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 200)  # tables unwrapped, so output can be searched


async def cli(settings: KafkaSettings, *args: str, **env: str) -> Result:
    environment = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": settings.topic_prefix,
        "KAFKA_REPLICATION_FACTOR": str(settings.replication_factor),
        **env,
    }
    return await asyncio.to_thread(lambda: CliRunner().invoke(app, list(args), env=environment))


async def produce(settings: KafkaSettings, topic: str, records: Sequence[tuple[int, bytes, bytes, int | None]]) -> None:
    """(partition, key, value, timestamp ms or None) records, acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for partition, key, value, timestamp in records:
            await producer.send_and_wait(
                topic, value, key=key, partition=partition, timestamp_ms=timestamp, headers=HEADERS
            )
    finally:
        await producer.stop()


async def consume_all(settings: KafkaSettings, topic: str, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    reader = AIOKafkaConsumer(topic, bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest")
    await reader.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < count:
                for batch in (await reader.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await reader.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def commit(settings: KafkaSettings, group: str, offsets: dict[TopicPartition, int]) -> None:
    async with consumer(settings, group) as client:
        client.assign(list(offsets))
        await client.commit(offsets)


async def committed(settings: KafkaSettings, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        return {tp: meta.offset for tp, meta in (await admin.list_consumer_group_offsets(group)).items()}
    finally:
        await admin.close()


# -- topics ----------------------------------------------------------------------------------------


async def test_topics_create_is_idempotent_and_compacts_the_state_topics(kafka_bootstrap: str) -> None:
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"c{uuid.uuid4().hex[:10]}.")
    names = [settings.topic(spec) for spec in ALL_TOPICS]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        first = await cli(settings, "topics", "create")
        assert first.exit_code == 0, first.output
        assert first.output.count("created") == len(ALL_TOPICS)
        second = await create_topics(settings)
        assert [(r.name, r.outcome, r.detail) for r in second] == [(name, "present", "") for name in names]
        again = await cli(settings, "topics", "create")
        assert again.exit_code == 0 and again.output.count("already present") == len(ALL_TOPICS), again.output

        wanted = {"cleanup.policy": None, "min.insync.replicas": None}
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, wanted) for name in names]
        )
        configs = {
            resource["resource_name"]: {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
            for resource in response.to_object()["resources"]
        }
        for spec in ALL_TOPICS:
            assert configs[settings.topic(spec)] == {
                "cleanup.policy": "compact" if spec.cleanup is Cleanup.COMPACT else "delete",
                "min.insync.replicas": "1",
            }, spec.name
        assert {spec.name for spec in ALL_TOPICS if spec.cleanup is Cleanup.COMPACT} == {
            "intake.reservations",
            "stats.snapshots",
            "registry.dead-letters.redriven",
        }
        described = await describe_topics(settings)
        assert [(d.name, len(d.partitions), d.drift(settings)) for d in described] == [
            (settings.topic(spec), spec.partitions, []) for spec in ALL_TOPICS
        ]

        shown = await cli(settings, "topics", "describe", "intake.reservations")
        assert shown.exit_code == 0, shown.output
        assert "key: child pseudonym" in shown.output and "cleanup.policy: compact" in shown.output
    finally:
        await admin.delete_topics(names)
        await admin.close()


async def test_topics_create_reports_what_the_broker_refuses(kafka_bootstrap: str) -> None:
    settings = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=f"f{uuid.uuid4().hex[:10]}.", replication_factor=99
    )
    results = await create_topics(settings, [SUBMISSIONS_RECEIVED])
    assert [(r.outcome, "replication" in r.detail.lower()) for r in results] == [("failed", True)]
    result = await cli(settings, "topics", "create")
    assert result.exit_code == 1 and "failed" in result.output
    assert not [d for d in await describe_topics(settings) if d.exists]


# -- lag -------------------------------------------------------------------------------------------


async def test_lag_is_end_minus_committed_per_partition(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topic(SUBMISSIONS_RECEIVED)
    await produce(kafka_settings, topic, [(0, b"a", b"{}", None)] * 7 + [(1, b"b", b"{}", None)] * 4)
    group = f"lag-{uuid.uuid4().hex[:8]}"
    await commit(kafka_settings, group, {TopicPartition(topic, 0): 5})

    [result] = await consumer_lag(kafka_settings, [group])
    rows = {p.partition: (p.committed, p.end, p.lag) for p in result.partitions if p.topic == topic}
    assert rows == {0: (5, 7, 2), 1: (None, 4, 4), 2: (None, 0, 0), 3: (None, 0, 0), 4: (None, 0, 0), 5: (None, 0, 0)}
    assert result.topic_totals() == {topic: 6} and result.total == 6
    assert result.group.state == "Empty" and not result.group.active

    shown = await cli(kafka_settings, "topics", "lag", "--group", group)
    assert shown.exit_code == 0, shown.output
    assert f"{group} (Empty, 0 members)" in shown.output
    cells = [[cell.strip() for cell in line.split("│")[1:6]] for line in shown.output.splitlines()]
    assert [topic, "0", "5", "7", "2"] in cells


# -- dead letters ----------------------------------------------------------------------------------


def keys_by_partition(partitions: int, count: int, start: int = 0) -> list[bytes]:
    """`count` keys the default partitioner puts on partition `start` of `partitions`, the way the
    dead-letter publisher's producer will."""
    choose = DefaultPartitioner()
    every = list(range(partitions))
    keys = (f"child-{n}".encode() for n in range(10_000))
    return [key for key in keys if choose(key, every, every) == start][:count]


async def write_dead_letters(settings: KafkaSettings) -> list[ConsumerRecord[bytes, bytes]]:
    """Three records of the submissions topic and one of the hospitals' inbound topic, consumed from the
    broker and dead-lettered through the shared publisher (the inbound one sealed, as intake does). Two
    letters share a dead-letter partition, so a bare offset names a letter on two partitions."""
    [k0, k1] = keys_by_partition(DEAD_LETTERS.partitions, 2, start=0)
    [k2] = keys_by_partition(DEAD_LETTERS.partitions, 1, start=1)
    received, inbound = settings.topic(SUBMISSIONS_RECEIVED), settings.topic(HOSPITAL_INBOUND)
    await produce(
        settings, received, [(2, key, json.dumps({"n": n}).encode(), None) for n, key in enumerate((k0, k1, k2))]
    )
    await produce(settings, inbound, [(4, b"ous", b'{"national_id": "01010112345"}', None)])
    plain, sealed = await consume_all(settings, received, 3), await consume_all(settings, inbound, 1)
    broker = create_broker(settings, "ops-test")
    async with broker:
        await DeadLetterPublisher(broker, "validation", "validation", settings.topic(DEAD_LETTERS)).publish(
            [(record, ValueError(f"bad {n}"), 3) for n, record in enumerate(plain)]
        )
        seal = Sealer(VAULT_KEY, Purpose.DEAD_LETTERS).seal
        await DeadLetterPublisher(broker, "intake", "intake-inbound", settings.topic(DEAD_LETTERS), seal=seal).publish(
            [(sealed[0], RuntimeError("unanswerable"), 1)]
        )
    return plain + sealed


async def test_dead_letters_list_and_show(kafka_settings: KafkaSettings) -> None:
    records = await write_dead_letters(kafka_settings)
    listing = await list_dead_letters(kafka_settings)
    assert listing.undecodable == [] and listing.redriven == {}
    by_source = {(s.letter.source_topic, s.letter.partition, s.letter.offset): s for s in listing.letters}
    assert set(by_source) == {(r.topic, r.partition, r.offset) for r in records}
    assert [s.letter.consumer_group for s in listing.letters].count("intake-inbound") == 1

    only_inbound = await list_dead_letters(kafka_settings, "hospital.inbound.submissions")
    [inbound] = only_inbound.letters
    assert inbound.letter.value_encoding == "fernet" and inbound.letter.error == "RuntimeError: unanswerable"

    for record in records[:3]:
        stored = by_source[(record.topic, record.partition, record.offset)]
        shown, marker = await fetch_letter(kafka_settings, LetterId(stored.offset, stored.partition))
        assert shown == stored and marker is None
        assert original_value(shown.letter) == record.value
        assert readable(original_value(shown.letter)) == ("json", json.loads(record.value))
    with pytest.raises(SealedError):
        original_value(inbound.letter)
    assert original_value(inbound.letter, VAULT_KEY) == records[3].value

    # Offset 0 is on two partitions (two letters share one); offset 1 only on the shared one.
    with pytest.raises(OpsError, match="several partitions"):
        await fetch_letter(kafka_settings, LetterId(0))
    assert (await fetch_letter(kafka_settings, LetterId(1)))[0].offset == 1
    with pytest.raises(OpsError, match="no dead letter"):
        await fetch_letter(kafka_settings, LetterId(40, 0))

    listed = await cli(kafka_settings, "deadletters", "list")
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("ValueError: bad") == 3 and "intake-inbound" in listed.output
    plain = await cli(kafka_settings, "deadletters", "show", "0:1")
    assert plain.exit_code == 0, plain.output
    assert "ValueError: bad" in plain.output and '"n":' in plain.output and "trace=base64:AAE=" in plain.output
    sealed = await cli(kafka_settings, "deadletters", "show", inbound.id)
    assert sealed.exit_code == 0 and "sealed (fernet)" in sealed.output and "01010112345" not in sealed.output
    unsealed = await cli(kafka_settings, "deadletters", "show", inbound.id, "--unseal", INTAKE_VAULT_KEY=VAULT_KEY_ENV)
    assert unsealed.exit_code == 0 and "01010112345" in unsealed.output, unsealed.output


async def test_redrive_puts_the_original_back_once(kafka_settings: KafkaSettings) -> None:
    records = await write_dead_letters(kafka_settings)
    sources = [kafka_settings.topic(SUBMISSIONS_RECEIVED), kafka_settings.topic(HOSPITAL_INBOUND)]

    first = await cli(kafka_settings, "deadletters", "redrive", "--all", "--unseal", INTAKE_VAULT_KEY=VAULT_KEY_ENV)
    assert first.exit_code == 0, first.output
    listing = await list_dead_letters(kafka_settings)
    assert len(listing.redriven) == 4
    async with consumer(kafka_settings) as client:
        for record in records:
            [marker] = [
                m
                for m in listing.redriven.values()
                if m.source_offset == record.offset and m.source_topic == record.topic
            ]
            assert marker.redriven_partition == record.partition
            again = await read_at(client, TopicPartition(record.topic, record.partition), marker.redriven_offset)
            assert again is not None and again.offset > record.offset
            assert (again.key, again.value, list(again.headers)) == (record.key, record.value, HEADERS)
        ends = await client.end_offsets([TopicPartition(topic, p) for topic in sources for p in range(6)])

    second = await cli(kafka_settings, "deadletters", "redrive", "--all", "--unseal", INTAKE_VAULT_KEY=VAULT_KEY_ENV)
    assert second.exit_code == 0 and "Nothing to redrive" in second.output, second.output
    assert second.output.count("already redriven") == 4
    plan = await plan_redrive(kafka_settings, None, can_unseal=True)
    assert plan.selected == [] and len(plan.skipped) == 4
    assert (await redrive(kafka_settings, plan, VAULT_KEY)).redriven == []
    async with consumer(kafka_settings) as client:
        assert await client.end_offsets(list(ends)) == ends

    # A named letter goes again only when forced, and the new marker says so.
    stored = listing.letters[0]
    forced = await plan_redrive(kafka_settings, [LetterId(stored.offset, stored.partition)], force=True)
    assert forced.selected == [stored]
    [marker] = (await redrive(kafka_settings, forced)).redriven
    assert (
        marker.dead_letter == stored.id
        and marker.redriven_offset > listing.redriven[stored.letter.event_id].redriven_offset
    )


async def test_redrive_leaves_sealed_letters_without_the_key(kafka_settings: KafkaSettings) -> None:
    await write_dead_letters(kafka_settings)
    plan = await plan_redrive(kafka_settings, None, source_topic="hospital.inbound.submissions")
    assert plan.selected == [] and "--unseal" in plan.skipped[0][1]
    refused = await cli(kafka_settings, "deadletters", "show", "0:0", "--unseal")
    assert refused.exit_code == 2 and "INTAKE_VAULT_KEY" in refused.output


# -- replay ----------------------------------------------------------------------------------------


async def test_replay_moves_committed_offsets_and_refuses_while_a_member_is_active(
    kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = kafka_settings.topic(SUBMISSIONS_RECEIVED)
    t0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    await produce(kafka_settings, topic, [(p, b"k", b"{}", t0 + 1000 * n) for p in (0, 1) for n in range(10)])
    group = f"replay-{uuid.uuid4().hex[:8]}"
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    await commit(kafka_settings, group, {tp0: 10, tp1: 3})

    # To a time: the first record at or after it; never forward (partition 1 had only reached offset 3).
    plan = await plan_replay(kafka_settings, group, [topic], to_time=parse_time("2026-01-01T00:00:04Z"))
    assert {(r.partition, r.current, r.target) for r in plan.resets if r.partition < 2} == {(0, 10, 4), (1, 3, 3)}
    assert plan.again == 6
    await apply_replay(kafka_settings, plan)
    offsets = await committed(kafka_settings, group)
    assert (offsets[tp0], offsets[tp1]) == (4, 3)

    # To the beginning, through the command.
    result = await cli(kafka_settings, "replay", group, "--to-beginning", "--topic", topic, "--yes")
    assert result.exit_code == 0, result.output
    offsets = await committed(kafka_settings, group)
    assert offsets[tp0] == offsets[tp1] == 0 and set(offsets) == {TopicPartition(topic, p) for p in range(6)}

    # A member joins: planning and applying refuse, and the offsets stay where they are.
    await commit(kafka_settings, group, {tp0: 7})
    stale = await plan_replay(kafka_settings, group, [topic])
    member = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_settings.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await member.start()
    try:
        async with asyncio.timeout(30):
            while not member.assignment():
                await member.getmany(timeout_ms=200)
        with pytest.raises(GroupActiveError, match="Stop every"):
            await plan_replay(kafka_settings, group, [topic])
        with pytest.raises(GroupActiveError):
            await apply_replay(kafka_settings, stale)

        # Should the member join between the check and the commit, the broker refuses the commit itself.
        async def looks_empty(_: object, name: str) -> GroupState:
            return GroupState(name, "Empty")

        with monkeypatch.context() as patch:
            patch.setattr(deploy.ops.replay, "describe_group", looks_empty)
            with pytest.raises(GroupActiveError, match="joined"):
                await apply_replay(kafka_settings, stale)
        refused = await cli(kafka_settings, "replay", group, "--to-beginning", "--topic", topic, "--yes")
        assert refused.exit_code == 1 and "Stop every" in refused.output, refused.output
        assert (await committed(kafka_settings, group))[tp0] == 7
    finally:
        await member.stop()
