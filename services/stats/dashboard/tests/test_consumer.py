"""The feed on a real broker: reads both topics from their beginning without a consumer group, keeps the
newest snapshot per scope and the open reminders, skips what does not decode, reports when it has caught
up, and hands later records to the browsers' subscriptions as they arrive."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import pytest
from aiokafka import AIOKafkaProducer

from services.stats.dashboard.consumer import Feed
from services.stats.dashboard.state import DashboardState
from services.stats.dashboard.stream import Hub
from services.stats.dashboard.tests.factories import reminder, snapshot
from shared.events.stats import ReminderStatus
from shared.settings import KafkaSettings
from shared.topics import REMINDERS, STATS_SNAPSHOTS

pytestmark = [pytest.mark.kafka]


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@contextlib.asynccontextmanager
async def running(feed: Feed) -> AsyncIterator[None]:
    task = asyncio.create_task(feed.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_state_is_the_topics_from_their_beginning_then_changes_arrive_live(
    kafka_settings: KafkaSettings, producer: AIOKafkaProducer
) -> None:
    snapshots, reminders = kafka_settings.topic(STATS_SNAPSHOTS), kafka_settings.topic(REMINDERS)
    first, second = uuid.uuid4(), uuid.uuid4()
    for record in (snapshot("ous", 1, received=1), snapshot("ous", 3, received=3), snapshot("registry", 1)):
        await producer.send_and_wait(snapshots, record.to_json(), key=record.scope.encode())
    # Older than the one before it (a republication from a rebuild's race, say): dropped.
    await producer.send_and_wait(snapshots, snapshot("ous", 2, received=2).to_json(), key=b"ous")
    await producer.send_and_wait(snapshots, b'{"not": "a snapshot"}', key=b"ous")
    await producer.send_and_wait(snapshots, None, key=b"unn")  # a tombstone
    for event in (
        reminder("ous", reminder_id=first),
        reminder("ous", reminder_id=second, tumour_ref="T-2"),
        reminder("ous", ReminderStatus.CLEARED, reminder_id=first),
    ):
        await producer.send_and_wait(reminders, event.to_json(), key=b"ous")

    state, hub = DashboardState(ZoneInfo("Europe/Oslo")), Hub()
    feed = Feed(kafka_settings, state, hub)
    async with running(feed):
        await asyncio.wait_for(feed.caught_up.wait(), 30)
        assert state.snapshots["ous"].version == 3
        assert state.snapshots["registry"].version == 1
        assert "unn" not in state.snapshots
        assert list(state.reminders["ous"]) == [second]

        watching = hub.subscribe()
        await producer.send_and_wait(snapshots, snapshot("ous", 4, received=4).to_json(), key=b"ous")
        await producer.send_and_wait(reminders, reminder("unn", tumour_ref="U-1").to_json(), key=b"unn")
        # Two topics: the feed may fetch either first.
        changes = [await asyncio.wait_for(watching.queue.get(), 30) for _ in range(2)]
    assert {(change.kind, change.scope) for change in changes if change is not None} == {
        ("scope", "ous"),
        ("reminder", "unn"),
    }
    assert state.snapshots["ous"].version == 4


async def test_empty_topics_are_caught_up_at_once(kafka_settings: KafkaSettings) -> None:
    feed = Feed(kafka_settings, DashboardState(ZoneInfo("Europe/Oslo")), Hub())
    async with running(feed):
        await asyncio.wait_for(feed.caught_up.wait(), 30)
