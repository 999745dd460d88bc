"""The stats service on a real broker and a real PostgreSQL: figures, the snapshot topic read from the
beginning, reminders, redelivery, and `rebuild` arriving at the same numbers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from prometheus_client import REGISTRY

from services.stats.app import create_app
from services.stats.application import StatsApplication
from services.stats.handlers import INPUT_TOPICS
from services.stats.rebuild import partitions_of, rebuild
from services.stats.settings import StatsSettings
from services.stats.tests.conftest import ManualClock
from services.stats.tests.factories import STORY_TODAY, Outcome, story, synthetic
from services.stats.tests.test_projection import OUS_TOTAL
from shared.auth import Role, TokenEntry, TokenStore, digest
from shared.events import ReceiptIssued, ReminderChanged, StatsSnapshot
from shared.kafka.admin import ensure_topics
from shared.settings import KafkaSettings
from shared.topics import RECEIPTS, REMINDERS, STATS_SNAPSHOTS, SUBMISSIONS_REJECTED, SUBMISSIONS_VALIDATED

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]
STAFF = "staff-token"


def settings_for(kafka_bootstrap: str, database_url: str) -> StatsSettings:
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=f"t-stats-{uuid.uuid4().hex[:8]}.", batch_timeout_ms=20
    )
    return StatsSettings(database_url=database_url, kafka=kafka, snapshot_interval_s=0.2)


async def produce(kafka: KafkaSettings, events: Sequence[ReceiptIssued | Outcome]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sends = []
        for event in events:
            if isinstance(event, ReceiptIssued):
                topic, key = kafka.topic(RECEIPTS), event.hospital_id
            else:
                spec = SUBMISSIONS_REJECTED if event.event_type == "submission.rejected" else SUBMISSIONS_VALIDATED
                topic, key = kafka.topic(spec), event.child.pseudonym
            sends.append(await producer.send(topic, event.to_json(), key=key.encode()))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def read_all(kafka: KafkaSettings, topic: str) -> list[Any]:
    """Every record of a topic, read from the beginning by a fresh consumer (no group)."""
    partitions = await partitions_of(kafka, [topic])
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        start = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, start[tp])
        records: list[Any] = []
        for tp in partitions:
            while await consumer.position(tp) < end[tp]:
                fetched = await consumer.getmany(tp, timeout_ms=1000)
                records += fetched.get(tp, [])
        return records
    finally:
        await consumer.stop()


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.2)


def staff_app(settings: StatsSettings, clock: ManualClock) -> FastAPI:
    app = create_app(settings, clock)
    app.state.tokens = TokenStore([TokenEntry(name="coder", role=Role.STAFF, sha256=digest(STAFF))])
    return app


def consumed(kafka: KafkaSettings, metric: str) -> float:
    """Events of this test's topics the consumer applied (or skipped as duplicates), from its metrics."""
    return sum(
        REGISTRY.get_sample_value(metric, {"service": "stats", "topic": kafka.topic(spec)}) or 0
        for spec in INPUT_TOPICS
    )


async def latest_snapshots(kafka: KafkaSettings) -> dict[str, StatsSnapshot]:
    latest: dict[str, StatsSnapshot] = {}
    for record in await read_all(kafka, kafka.topic(STATS_SNAPSHOTS)):
        snapshot = StatsSnapshot.from_json(record.value)
        assert record.key.decode() == snapshot.scope
        previous = latest.get(snapshot.scope)
        assert previous is None or snapshot.version >= previous.version  # monotonic per scope
        latest[snapshot.scope] = snapshot
    return latest


async def test_live_figures_the_snapshot_topic_redelivery_and_rebuild(kafka_bootstrap: str, postgres_url: str) -> None:
    settings = settings_for(kafka_bootstrap, postgres_url)
    await ensure_topics(settings.kafka)
    clock = ManualClock(datetime(2025, 2, 1, 12, tzinfo=UTC))
    clock.set_day(STORY_TODAY)
    # The hand-computed story at Oslo and Haukeland, and 150 more children at the other two hospitals.
    events = story().events + synthetic(150, seed=9, hospitals=("st-olav", "unn"))
    await produce(settings.kafka, events)

    app = staff_app(settings, clock)
    stats: StatsApplication = app.state.stats
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://stats", headers={"Authorization": f"Bearer {STAFF}"}
        ) as client,
    ):

        async def all_applied() -> bool:
            return consumed(settings.kafka, "registry_events_processed_total") >= len(events)

        await eventually(all_applied)
        response = await client.get("/stats/ous")
        assert response.status_code == 200
        assert response.json()["total"]["tumours"] == OUS_TOTAL.tumours
        ous = await stats.current("ous")
        registry = await stats.current("registry")
        assert ous.total == OUS_TOTAL

        # The snapshot topic, read from the beginning by a fresh consumer, ends at the current state.
        async def topic_caught_up() -> bool:
            latest = await latest_snapshots(settings.kafka)
            return "registry" in latest and latest["registry"].version == (await stats.current("registry")).version

        await eventually(topic_caught_up)
        latest = await latest_snapshots(settings.kafka)
        for scope in ("ous", "haukeland", "st-olav", "unn", "registry"):
            current = await stats.current(scope)
            assert latest[scope].version == current.version
            assert latest[scope].total == current.total
            assert latest[scope].by_diagnosis_year == current.by_diagnosis_year

        reminders = [
            ReminderChanged.from_json(r.value) for r in await read_all(settings.kafka, settings.kafka.topic(REMINDERS))
        ]
        assert reminders, "reminders were announced"
        open_now = {r.reminder_id for r in await stats.outstanding(None)}
        last_state: dict[uuid.UUID, ReminderChanged] = {}
        for reminder in reminders:
            last_state[reminder.reminder_id] = reminder
        assert {rid for rid, r in last_state.items() if r.status == "open"} == open_now

        # Redelivered events (the same ids again) change nothing.
        seen_before = consumed(settings.kafka, "registry_events_duplicate_total")
        await produce(settings.kafka, events)

        async def redelivered() -> bool:
            return consumed(settings.kafka, "registry_events_duplicate_total") >= seen_before + len(events)

        await eventually(redelivered)
        assert (await stats.current("registry")).total == registry.total

    # Rebuild from the topics: the same numbers (the story's part checked by hand).
    report = await rebuild(settings, batch_size=1000, clock=clock)
    assert report.applied == len(events)
    assert report.duplicates == len(events)
    assert report.undecodable == 0
    assert report.reminders_announced == 0  # nothing changed, nothing to tell the hospitals
    app = staff_app(settings, clock)
    rebuilt: StatsApplication = app.state.stats
    again_ous, again_registry = await rebuilt.current("ous"), await rebuilt.current("registry")
    assert again_registry.total == registry.total
    assert again_registry.by_diagnosis_year == registry.by_diagnosis_year
    assert again_ous.total == ous.total
    assert again_registry.version > registry.version
    await app.state.service.engine.dispose()
    latest = await latest_snapshots(settings.kafka)
    assert latest["registry"].total == registry.total
