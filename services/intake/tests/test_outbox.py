"""The outbox relay on SQLite with a stand-in for Kafka: order, marking, failures, waking up. The same
relay against a real broker (and a stopped one) is in test_integration.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence

import pytest

from services.intake.outbox import OUTBOX_BACKLOG, OutboxRelay
from services.intake.storage import Database
from services.intake.tests.conftest import OUS, Harness
from services.intake.tests.factories import diagnosis, encode, submission
from shared.kafka import Outgoing
from shared.topics import RECEIPTS, SUBMISSIONS_RECEIVED


class FakeKafka:
    def __init__(self) -> None:
        self.published: list[Outgoing] = []
        self.down = False
        self.attempts = 0

    async def publish(self, messages: Sequence[Outgoing]) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionError("broker away")
        self.published.extend(messages)

    def event_ids(self) -> list[uuid.UUID]:
        return [message.event.event_id for message in self.published]


def relay_for(harness: Harness, kafka: FakeKafka, **options: float) -> OutboxRelay:
    return OutboxRelay(Database(harness.service.sessions), kafka.publish, lambda name: f"env.{name}", **options)  # type: ignore[arg-type]


async def submit(harness: Harness, count: int) -> None:
    for n in range(count):
        body = submission(form=diagnosis(tumour_ref=f"T-{n}"))
        assert (await harness.client.post("/v1/submissions", content=encode(body), headers=OUS)).status_code == 202


async def test_rows_are_published_in_order_with_their_keys_and_marked_sent(harness: Harness) -> None:
    await submit(harness, 3)
    kafka = FakeKafka()
    relay = relay_for(harness, kafka)

    assert await relay.relay_once() == 6
    rows = await harness.outbox()
    assert kafka.event_ids() == [row.event_id for row in rows]
    assert [m.topic for m in kafka.published[:2]] == [f"env.{SUBMISSIONS_RECEIVED.name}", f"env.{RECEIPTS.name}"]
    assert [m.key_bytes for m in kafka.published] == [row.key.encode() for row in rows]
    assert all(row.sent_at is not None for row in rows)
    assert await relay.relay_once() == 0
    assert await relay.refresh_backlog() == 0 and OUTBOX_BACKLOG._value.get() == 0


async def test_a_failed_publish_keeps_the_rows_for_the_next_round(harness: Harness) -> None:
    await submit(harness, 2)
    kafka = FakeKafka()
    kafka.down = True
    relay = relay_for(harness, kafka)

    with pytest.raises(ConnectionError):
        await relay.relay_once()
    assert all(row.sent_at is None for row in await harness.outbox())
    assert await relay.refresh_backlog() == 4

    kafka.down = False
    assert await relay.relay_once() == 4
    assert len(set(kafka.event_ids())) == 4


async def test_big_backlogs_go_out_in_batches_in_order(harness: Harness) -> None:
    await submit(harness, 5)
    kafka = FakeKafka()
    relay = relay_for(harness, kafka, batch=3)
    counts = [await relay.relay_once() for _ in range(5)]
    assert counts == [3, 3, 3, 1, 0]
    assert kafka.event_ids() == [row.event_id for row in await harness.outbox()]


async def test_the_background_relay_wakes_on_commit_and_rides_out_an_outage(harness: Harness) -> None:
    kafka = FakeKafka()
    relay = relay_for(harness, kafka, poll_s=30.0, max_backoff_s=0.05)
    harness.intake._notify = relay.notify  # the app's use cases wake this relay instead of the app's own
    await relay.start()
    try:
        await submit(harness, 1)
        await _eventually(lambda: len(kafka.published) == 2, within=2.0)  # long before the 30 s poll

        kafka.down = True
        await submit(harness, 1)
        await _eventually(lambda: kafka.attempts >= 3, within=2.0)  # backing off, retrying
        assert len(kafka.published) == 2

        kafka.down = False
        await _eventually(lambda: len(kafka.published) == 4, within=2.0)
        assert len(set(kafka.event_ids())) == 4
    finally:
        await relay.stop()


async def _eventually(condition: Callable[[], bool], within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
