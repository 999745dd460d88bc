"""The infrastructure the integration tests stand on: a real Kafka broker and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import UnknownTopicOrPartitionError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from deploy.local.kafka import KafkaCluster


def _topic(purpose: str) -> str:
    return f"infra-{purpose}-{uuid.uuid4().hex[:8]}"


async def _create_topic(servers: str, topic: NewTopic) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics([topic])
    finally:
        await admin.close()


async def _produce(servers: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", enable_idempotence=True, compression_type="gzip")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"child-1")
    finally:
        await producer.stop()


async def _consume(servers: str, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        group_id=f"infra-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        return [(await asyncio.wait_for(consumer.getone(), timeout=30)).value or b"" for _ in range(count)]
    finally:
        await consumer.stop()


async def _in_sync_partition(admin: AIOKafkaAdminClient, topic: str, replicas: int) -> dict[str, Any]:
    """The topic's only partition once it has a leader and every replica in sync.

    A new topic reaches each broker's metadata a moment after creation; until then a broker reports it unknown.
    """
    for _ in range(150):
        [description] = await admin.describe_topics([topic])
        partitions = description["partitions"]
        if partitions and partitions[0]["leader"] >= 0 and len(partitions[0]["isr"]) == replicas:
            return cast(dict[str, Any], partitions[0])
        await asyncio.sleep(0.2)
    raise AssertionError(f"{topic} did not get {replicas} in-sync replicas: {description}")


@pytest.mark.kafka
async def test_idempotent_acks_all_producer_round_trips_through_the_broker(kafka_bootstrap: str) -> None:
    topic = _topic("roundtrip")
    await _create_topic(kafka_bootstrap, NewTopic(topic, num_partitions=1, replication_factor=1))

    await _produce(kafka_bootstrap, topic, [b"first", b"second"])

    assert await _consume(kafka_bootstrap, topic, 2) == [b"first", b"second"]


@pytest.mark.kafka
async def test_producing_to_an_unknown_topic_fails_instead_of_creating_it(kafka_bootstrap: str) -> None:
    topic = _topic("never-created")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, request_timeout_ms=3000)
    await producer.start()
    try:
        with pytest.raises(UnknownTopicOrPartitionError):
            await producer.send_and_wait(topic, b"lost")
    finally:
        await producer.stop()

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert topic not in await admin.list_topics()
    finally:
        await admin.close()


@pytest.mark.postgres
async def test_each_test_gets_an_empty_postgres_database_through_asyncpg(postgres_url: str) -> None:
    engine = create_async_engine(postgres_url)
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("select 1"))).scalar_one() == 1
            database = (await connection.execute(text("select current_database()"))).scalar_one()
            tables = await connection.execute(
                text("select count(*) from information_schema.tables where table_schema = 'public'")
            )
            assert tables.scalar_one() == 0
    finally:
        await engine.dispose()
    assert database == make_url(postgres_url).database


@pytest.mark.kafka
@pytest.mark.slow
async def test_three_node_cluster_takes_acks_all_writes_with_the_leader_down(
    kafka_cluster3: KafkaCluster,
) -> None:
    servers = kafka_cluster3.bootstrap_servers
    topic = _topic("replicated")
    await _create_topic(
        servers,
        NewTopic(topic, num_partitions=1, replication_factor=3, topic_configs={"min.insync.replicas": "2"}),
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        partition = await _in_sync_partition(admin, topic, replicas=3)
        [configs] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    assert sorted(partition["replicas"]) == [0, 1, 2]
    [resource] = configs.to_object()["resources"]
    settings = {entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]}
    assert settings["min.insync.replicas"] == "2"

    await _produce(servers, topic, [b"before-0", b"before-1"])
    leader = partition["leader"]
    await asyncio.to_thread(kafka_cluster3.kill_node, leader)
    try:
        assert not kafka_cluster3.status()[leader].alive
        # Two in-sync replicas remain: a new leader takes acks=all writes, and nothing written is lost.
        await _produce(servers, topic, [b"after-0", b"after-1"])
        consumed = await _consume(servers, topic, 4)
    finally:
        await asyncio.to_thread(kafka_cluster3.start_node, leader)
    assert consumed == [b"before-0", b"before-1", b"after-0", b"after-1"]
