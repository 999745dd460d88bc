"""Throughput of the batch handler and of a rebuild on SQLite, printed (`pytest -s`) as the figures to
watch; the floors only catch a collapse (an accidental query per event), not noise on a busy machine.
And the `registry stats rebuild` command end to end."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploy.cli import app
from services.stats.application import StatsApplication
from services.stats.rebuild import rebuild
from services.stats.settings import StatsSettings
from services.stats.tests.conftest import ManualClock
from services.stats.tests.factories import synthetic
from services.stats.tests.test_kafka_integration import produce
from shared.kafka import Delivery
from shared.kafka.admin import ensure_topics
from shared.settings import KafkaSettings

FLOOR = 1500  # events/s


@pytest.mark.slow
async def test_handler_throughput(stats: StatsApplication) -> None:
    events = synthetic(1000, seed=3)
    deliveries = [Delivery(e, None, "t", 0, i) for i, e in enumerate(events)]
    started = time.perf_counter()
    for start in range(0, len(deliveries), 500):  # the consumer's default max_batch
        await stats.handle(deliveries[start : start + 500])
    rate = len(events) / (time.perf_counter() - started)
    print(f"\nhandler, batches of 500, SQLite: {len(events)} events at {rate:,.0f} events/s")
    assert rate > FLOOR


@pytest.mark.slow
@pytest.mark.kafka
async def test_rebuild_throughput(kafka_bootstrap: str, tmp_path: Path) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"t-stats-perf-{uuid.uuid4().hex[:8]}.")
    await ensure_topics(kafka)
    events = synthetic(2000, seed=4)
    await produce(kafka, events)
    settings = StatsSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'stats.db'}", kafka=kafka)

    report = await rebuild(settings, clock=ManualClock(datetime(2025, 2, 1, 12, tzinfo=UTC)))

    assert report.applied == len(events)
    rate = report.records / report.seconds
    print(f"\nrebuild, batches of 10,000, SQLite: {report.records} events at {rate:,.0f} events/s")
    assert rate > FLOOR


@pytest.mark.kafka
def test_the_rebuild_command(kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"t-stats-cli-{uuid.uuid4().hex[:8]}."
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("STATS_DATABASE_URL", f"sqlite:///{tmp_path / 'stats.db'}")
    runner = CliRunner()

    # The command runs its own event loop: in a thread of its own, away from the tests' loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        missing = pool.submit(runner.invoke, app, ["stats", "rebuild", "--yes"]).result()
        assert missing.exit_code == 1
        assert "topics not found" in missing.output
        pool.submit(asyncio.run, ensure_topics(kafka)).result()
        pool.submit(asyncio.run, produce(kafka, synthetic(20, seed=5))).result()
        done = pool.submit(runner.invoke, app, ["stats", "rebuild", "--yes"]).result()

    assert done.exit_code == 0, done.output
    assert "records read" in done.output
    assert "registry: children, tumours" in done.output
