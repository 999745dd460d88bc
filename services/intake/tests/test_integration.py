"""Intake on real parts: Apache Kafka and PostgreSQL, the service started as in production (migrations,
topics, consumers, outbox relay), driven through its HTTP API and its Kafka topics."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI

from deploy.local.kafka import KafkaCluster
from services.intake.app import MIGRATIONS
from services.intake.outbox import OutboxRelay
from services.intake.storage import Database
from services.intake.tests.conftest import OUS, STAFF, build_app, intake_settings
from services.intake.tests.factories import CHILD, OTHER_CHILD, diagnosis, encode, submission, treatment
from shared.db import create_engine, session_factory
from shared.db.migrations import upgrade
from shared.events import ReceiptIssued, ReservationRegistered, SubmissionReceived, SubmissionValidated
from shared.kafka import Outgoing
from shared.kafka.admin import ensure_topics
from shared.settings import KafkaSettings
from shared.topics import (
    HOSPITAL_INBOUND,
    RECEIPTS,
    RESERVATIONS,
    SUBMISSIONS_RECEIVED,
    SUBMISSIONS_VALIDATED,
    TopicSpec,
)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan: what `registry serve intake` runs, minus uvicorn."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake", timeout=30) as client:
            yield client


async def read_topic(kafka: KafkaSettings, spec: TopicSpec, count: int, within: float = 30.0) -> list[Any]:
    """The first `count` records of a topic (all partitions), then a short wait for any more."""
    # Assigned partitions, no consumer group: no rebalance to wait for.
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    consumer.assign([TopicPartition(kafka.topic(spec), partition) for partition in range(spec.partitions)])
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + within
        while len(records) < count and asyncio.get_running_loop().time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records += batch
        for batch in (await consumer.getmany(timeout_ms=1000)).values():  # anything beyond `count`?
            records += batch
    finally:
        await consumer.stop()
    return records


async def eventually(probe: Callable[[], Any], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await probe():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.1)


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/submissions", content=encode(body), headers=OUS)


@pytest.mark.kafka
@pytest.mark.postgres
async def test_submissions_receipts_and_reservations_flow_through_kafka(
    kafka_settings: KafkaSettings, postgres_url: str
) -> None:
    settings = intake_settings(postgres_url, kafka_settings)
    async with running(build_app(settings)) as client:
        first = submission(form=diagnosis())
        assert (await post(client, first)).status_code == 202
        assert (await post(client, first)).status_code == 200
        assert (await post(client, submission(form=treatment()))).status_code == 202
        other = submission(national_id=OTHER_CHILD, form=diagnosis("T-2", sex="male"))
        assert (await post(client, other)).status_code == 202
        reserved = await client.post("/v1/reservations", json={"national_id": CHILD}, headers=STAFF)
        assert reserved.status_code == 201

        records = await read_topic(kafka_settings, SUBMISSIONS_RECEIVED, 3)
        received = [SubmissionReceived.from_json(r.value) for r in records]
        assert len(received) == 3 and len({e.event_id for e in received}) == 3
        assert all(CHILD not in r.value.decode() for r in records)
        by_child: dict[str, list[str]] = {}
        for record, event in zip(records, received, strict=True):
            assert record.key == event.child.pseudonym.encode()
            by_child.setdefault(event.child.pseudonym, []).append(event.form.form_type)
        assert sorted(by_child.values()) == [["diagnosis"], ["diagnosis", "treatment"]]  # order per child
        reservations = await read_topic(kafka_settings, RESERVATIONS, 1)
        registered = ReservationRegistered.from_json(reservations[0].value)
        assert reservations[0].key == registered.child_pseudonym.encode()
        assert registered.child_pseudonym in by_child

        # Validation accepts the first form: its receipt moves, and says so on the receipts topic.
        event = next(e for e in received if str(e.submission_id) == first["submission_id"])
        decision = SubmissionValidated(
            **event.derive("validated"),
            submission_id=event.submission_id,
            received_event_id=event.event_id,
            hospital_id=event.hospital_id,
            child=event.child,
            form=event.form,
            received_at=event.received_at,
            report_id=event.report_id,
        )
        producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers)
        await producer.start()
        try:
            topic = kafka_settings.topic(SUBMISSIONS_VALIDATED)
            for _ in range(2):  # delivered twice: applied once
                await producer.send_and_wait(topic, decision.to_json(), key=event.child.pseudonym.encode())
        finally:
            await producer.stop()

        async def accepted() -> bool:
            response = await client.get(f"/v1/receipts/{first['submission_id']}", headers=OUS)
            return bool(response.json()["status"] == "accepted")

        await eventually(accepted)
        receipts = [ReceiptIssued.from_json(r.value) for r in await read_topic(kafka_settings, RECEIPTS, 4)]
        assert sorted(r.status.value for r in receipts) == ["accepted", "received", "received", "received"]


@pytest.mark.kafka
@pytest.mark.postgres
async def test_hospitals_submit_through_the_inbound_topic(kafka_settings: KafkaSettings, postgres_url: str) -> None:
    settings = intake_settings(postgres_url, kafka_settings)
    good, bad = submission(), submission(form=diagnosis(grade=0))
    async with running(build_app(settings)):
        producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for body in (good, bad):
                await producer.send_and_wait(
                    kafka_settings.topic(HOSPITAL_INBOUND), encode(body), key=b"ous", headers=[("hospital-id", b"ous")]
                )
        finally:
            await producer.stop()
        receipts = [ReceiptIssued.from_json(r.value) for r in await read_topic(kafka_settings, RECEIPTS, 2)]

    assert {(str(r.submission_id), r.status.value) for r in receipts} == {
        (good["submission_id"], "received"),
        (bad["submission_id"], "rejected"),
    }
    (received,) = await read_topic(kafka_settings, SUBMISSIONS_RECEIVED, 1)
    assert SubmissionReceived.from_json(received.value).channel == "kafka"


@pytest.mark.kafka
@pytest.mark.postgres
async def test_rows_committed_before_a_crash_are_published_once_after_the_restart(
    kafka_settings: KafkaSettings, postgres_url: str
) -> None:
    settings = intake_settings(postgres_url, kafka_settings)
    crashed = build_app(settings)  # its relay never runs: as if the process died right after the commits
    await upgrade(crashed.state.service.engine, MIGRATIONS)
    transport = httpx.ASGITransport(app=crashed)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        for n in range(5):
            assert (await post(client, submission(form=diagnosis(f"T-{n}")))).status_code == 202
    await crashed.state.service.engine.dispose()

    async with running(build_app(settings)):
        records = await read_topic(kafka_settings, SUBMISSIONS_RECEIVED, 5)
    assert len(records) == 5
    assert len({SubmissionReceived.from_json(r.value).event_id for r in records}) == 5


@pytest.mark.postgres
async def test_only_one_relay_publishes_at_a_time_on_postgres(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    app = build_app(intake_settings(postgres_url))
    await upgrade(app.state.service.engine, MIGRATIONS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as client:
        assert (await post(client, submission())).status_code == 202

    release = asyncio.Event()
    published: list[str] = []

    async def slow(messages: Sequence[Outgoing]) -> None:
        await release.wait()
        published.extend(m.topic for m in messages)

    async def fast(messages: Sequence[Outgoing]) -> None:
        published.extend(m.topic for m in messages)

    first = OutboxRelay(Database(session_factory(engine)), slow, str)
    second = OutboxRelay(Database(app.state.service.sessions), fast, str)  # another process's pool
    holding = asyncio.create_task(first.relay_once())
    await asyncio.sleep(0.5)  # the first relay now holds the lock and waits in its publish
    assert await second.relay_once() == 0 and published == []
    release.set()
    assert await holding == 2
    assert await second.relay_once() == 0  # sent: nothing left for anyone
    assert published == [SUBMISSIONS_RECEIVED.name, RECEIPTS.name]
    await engine.dispose()
    await app.state.service.engine.dispose()


@pytest.mark.postgres
async def test_concurrent_resends_register_one_submission(postgres_url: str) -> None:
    app = build_app(intake_settings(postgres_url))
    await upgrade(app.state.service.engine, MIGRATIONS)
    body = submission()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as client:
        responses = await asyncio.gather(*(post(client, body) for _ in range(8)))
        statuses = sorted(r.status_code for r in responses)
        listed = (await client.get("/v1/receipts", headers=OUS)).json()["items"]
    await app.state.service.engine.dispose()
    assert statuses == [200] * 7 + [202]
    assert len(listed) == 1


@pytest.mark.kafka
@pytest.mark.postgres
@pytest.mark.slow
async def test_submissions_made_while_kafka_is_down_flow_once_when_it_returns(
    tmp_path: Path, postgres_url: str
) -> None:
    cluster = KafkaCluster("intake-outage", 1, state_dir=tmp_path / "kafka", free_ports=True)
    await asyncio.to_thread(cluster.start)
    try:
        kafka = KafkaSettings(bootstrap_servers=cluster.bootstrap_servers, topic_prefix="outage.")
        await ensure_topics(kafka)
        settings = intake_settings(postgres_url, kafka)
        async with running(build_app(settings)) as client:
            assert (await post(client, submission(form=diagnosis("T-0")))).status_code == 202
            assert len(await read_topic(kafka, RECEIPTS, 1)) == 1  # the relay is up and publishing
            await eventually(lambda: _backlog(client, 0))

            await asyncio.to_thread(cluster.kill_node, 0, signal.SIGTERM)
            for n in range(1, 21):
                response = await post(client, submission(form=diagnosis(f"T-{n}")))
                assert response.status_code == 202  # Kafka down: still accepted
            await eventually(lambda: _backlog(client, 40))  # 20 submissions and 20 receipts wait

            await asyncio.to_thread(cluster.start_node, 0)
            await eventually(lambda: _backlog(client, 0), within=60)

        received = await read_topic(kafka, SUBMISSIONS_RECEIVED, 21)
        ids = [SubmissionReceived.from_json(r.value).event_id for r in received]
        assert len(set(ids)) == 21  # every submission...
        assert len(ids) == 21  # ...once
        receipts = await read_topic(kafka, RECEIPTS, 21)
        assert len({ReceiptIssued.from_json(r.value).event_id for r in receipts}) == len(receipts) == 21
    finally:
        await asyncio.to_thread(cluster.stop)


async def _backlog(client: httpx.AsyncClient, expected: int) -> bool:
    metrics = (await client.get("/metrics")).text
    line = next(line for line in metrics.splitlines() if line.startswith("intake_outbox_backlog "))
    return float(line.split()[1]) == expected


@pytest.mark.kafka
@pytest.mark.slow
async def test_intake_starts_and_accepts_while_kafka_has_never_been_up(tmp_path: Path) -> None:
    cluster = KafkaCluster("intake-cold", 1, state_dir=tmp_path / "kafka", free_ports=True)  # not started yet
    kafka = KafkaSettings(bootstrap_servers=cluster.bootstrap_servers, topic_prefix="cold.")
    settings = intake_settings(f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}", kafka)
    try:
        async with running(build_app(settings)) as client:
            assert (await client.get("/ready")).status_code == 503
            assert (await post(client, submission(form=diagnosis("T-1")))).status_code == 202

            await asyncio.to_thread(cluster.start)
            await eventually(lambda: _ready(client), within=60)
            await eventually(lambda: _backlog(client, 0), within=60)
        [record] = await read_topic(kafka, SUBMISSIONS_RECEIVED, 1)
        assert SubmissionReceived.from_json(record.value).form.tumour_ref == "T-1"
    finally:
        await asyncio.to_thread(cluster.stop)


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/ready")).status_code == 200
