"""The consumer and two delivery workers (two instances, one lease) racing on one export database:
once the dust settles the Nordic side holds exactly what it must. On SQLite and on PostgreSQL, where
the consumer's row locks and the worker's conditional claims are what keep them apart."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.export import application
from services.export.delivery import DeliveryWorker
from services.export.storage import MIGRATIONS, Base
from services.export.tests import factories as f
from services.export.tests.harness import Harness
from services.export.tests.test_reservation_property import Model
from shared.db import create_engine
from shared.db.migrations import upgrade


def story(seed: int, children: int = 12, events: int = 160) -> list[Any]:
    rng = random.Random(seed)
    kids = [f.child(f"race-{seed}-{i}", date(2010, 1, 1) + timedelta(days=300 * i)) for i in range(children)]
    makers: list[Callable[[Any], Any]] = [
        lambda k: f.diagnosis(k, date(2020, 1, 1) + timedelta(days=rng.randint(0, 60))),
        lambda k: f.treatment(k, date(2020, 4, 1) + timedelta(days=rng.randint(0, 9))),
        lambda k: f.follow_up(k, date(2021, 4, 1) + timedelta(days=rng.randint(0, 9))),
        f.reserved,
        f.withdrawn,
    ]
    return [rng.choice(makers)(rng.choice(kids)) for _ in range(events)]


async def race(h: Harness, seed: int) -> None:
    events = story(seed)
    model = Model()
    rng = random.Random(seed)
    consumed = asyncio.Event()
    other = DeliveryWorker(h.transactions, h.sink, owner="second-instance", batch_size=3, lease_s=0.05)

    async def consume() -> None:
        position = 0
        while position < len(events):
            batch = events[position : position + rng.randint(1, 6)]
            position += len(batch)
            await h.consume(*batch)
            for event in batch:
                model.take(event)
            await asyncio.sleep(0)
        consumed.set()

    async def deliver(worker: DeliveryWorker) -> None:
        while not consumed.is_set():
            await worker.deliver_once()
            await asyncio.sleep(0.001)

    h.worker = DeliveryWorker(h.transactions, h.sink, owner="first-instance", batch_size=3, lease_s=0.05)
    await asyncio.gather(consume(), deliver(h.worker), deliver(other))
    await asyncio.sleep(0.06)  # let a lease lapse, whoever holds it
    await h.deliver()
    assert (await application.status(h.sessions)).pending == 0
    held = {r: {k: v for k, v in x.record.items() if k != "revision"} for r, x in (await h.holdings()).items()}
    assert held == model.expected(h.ids)
    assert held, "the story should leave something to transfer"


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_consumer_and_workers_racing_on_sqlite(sql_harness: Harness, seed: int) -> None:
    await race(sql_harness, seed)


@pytest.fixture
async def pg_harness(postgres_url: str, postgres_server: Any, tmp_path: Path) -> AsyncIterator[Harness]:
    engine = create_engine(postgres_url)
    await upgrade(engine, MIGRATIONS)
    await engine.dispose()
    nordic = f"nordic_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(nordic)
    h = Harness(tmp_path, tmp_path, "sql", export_url=postgres_url, nordic_url=postgres_server.url(nordic))
    yield h
    await h.close()
    postgres_server.drop_database(nordic)


@pytest.mark.postgres
@pytest.mark.parametrize("seed", [1, 2])
async def test_consumer_and_workers_racing_on_postgres(pg_harness: Harness, seed: int) -> None:
    await race(pg_harness, seed)


@pytest.mark.postgres
async def test_migration_matches_the_models_and_the_audit_log_is_append_only_on_postgres(
    pg_harness: Harness,
) -> None:
    async with pg_harness.engine.connect() as connection:
        diff = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata)
        )
    assert diff == []
    kid = f.child(500, date(2015, 1, 1))
    await pg_harness.consume(f.diagnosis(kid, date(2020, 1, 1)))
    await pg_harness.deliver()
    for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with pg_harness.sessions.begin() as session:
                await session.execute(text(statement))


async def test_migration_matches_the_models_on_sqlite(sql_harness: Harness) -> None:
    async with sql_harness.engine.connect() as connection:
        diff = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata)
        )
    assert diff == []
