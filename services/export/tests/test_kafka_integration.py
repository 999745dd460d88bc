"""The export service on a real broker and a real PostgreSQL: random interleavings of reports,
reservations and withdrawals on both input topics, redeliveries, and restarts of the service (one of
them delivering in scheduled batches), end with the Nordic side holding exactly the records of the
eligible, non-reserved children, each once, in their latest version."""

from __future__ import annotations

import asyncio
import base64
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY
from pydantic import SecretStr

from services.export import application
from services.export.app import create_app
from services.export.domain.record import ExportIds
from services.export.settings import ExportSettings
from services.export.sinks import SqlSink
from services.export.tests.factories import KEY
from services.export.tests.test_concurrency import story
from services.export.tests.test_reservation_property import Model
from shared.events import SubmissionValidated
from shared.kafka.admin import ensure_topics
from shared.settings import KafkaSettings
from shared.topics import RESERVATIONS, SUBMISSIONS_VALIDATED

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]
PSEUDONYM_KEY = SecretStr(base64.urlsafe_b64encode(KEY).decode())


def settings_for(kafka: KafkaSettings, database_url: str, nordic_url: str, interval: float | None) -> ExportSettings:
    return ExportSettings(
        database_url=database_url,
        kafka=kafka,
        pseudonym_key=PSEUDONYM_KEY,
        sink_database_url=nordic_url,
        batch_interval_s=interval,
        poll_interval_s=0.2,
        instance_id="integration",
    )


async def produce(kafka: KafkaSettings, events: Sequence[Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sends = []
        for event in events:
            if isinstance(event, SubmissionValidated):
                topic, key = kafka.topic(SUBMISSIONS_VALIDATED), event.child.pseudonym
            else:
                topic, key = kafka.topic(RESERVATIONS), event.child_pseudonym
            sends.append(await producer.send(topic, event.to_json(), key=key.encode()))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


def consumed(kafka: KafkaSettings) -> float:
    """Events of this test's topics the consumer applied or skipped as duplicates, from its metrics."""
    return sum(
        REGISTRY.get_sample_value(metric, {"service": "export", "topic": kafka.topic(spec)}) or 0
        for metric in ("registry_events_processed_total", "registry_events_duplicate_total")
        for spec in (SUBMISSIONS_VALIDATED, RESERVATIONS)
    )


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.2)


async def settled(kafka: KafkaSettings, produced: int, sessions: Any, nordic: SqlSink, expected: Any) -> bool:
    """Everything produced was consumed, nothing waits, and the Nordic side holds what it must."""
    if consumed(kafka) < produced or (await application.status(sessions)).pending:
        return False
    held = await nordic.holdings()
    return {r: {k: v for k, v in x.record.items() if k != "revision"} for r, x in held.items()} == expected


@pytest.mark.parametrize("seed", [11, 12])
async def test_reservation_always_wins_on_the_real_broker(
    kafka_bootstrap: str, postgres_url: str, tmp_path: Path, seed: int
) -> None:
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=f"t-export-{uuid.uuid4().hex[:8]}.", batch_timeout_ms=20
    )
    await ensure_topics(kafka)
    nordic_url = f"sqlite+aiosqlite:///{tmp_path / 'nordic.db'}"
    nordic = SqlSink(nordic_url)
    events = story(seed, children=10, events=90)
    rng = random.Random(seed)
    model = Model()
    produced = 0
    # Three runs of the service; the second delivers in scheduled batches. Each run gets the next part of
    # the story, and some of what was produced before again (redelivered: the same event ids).
    cuts = sorted(rng.sample(range(1, len(events)), 2))
    for run, (start, end) in enumerate(zip([0, *cuts], [*cuts, len(events)], strict=True)):
        again = rng.sample(events[:start], min(10, start))
        await produce(kafka, events[start:end] + again)
        produced += end - start + len(again)
        for event in events[start:end]:
            model.take(event)
        app = create_app(settings_for(kafka, postgres_url, nordic_url, 0.5 if run == 1 else None))
        async with app.router.lifespan_context(app):
            sessions = app.state.export_sessions
            expected = model.expected(ExportIds(KEY))
            await eventually(partial(settled, kafka, produced, sessions, nordic, expected))
        counts = await application.status(sessions)
        assert counts.failed == 0
    assert counts.sent > 0
    await nordic.close()
