"""Throughput of the consumer's use case on SQLite and of delivery through each sink, printed
(`pytest -s`) as the figures to watch; the floors only catch a collapse (a query per event), not noise."""

from __future__ import annotations

import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.export import application
from services.export.tests import factories as f
from services.export.tests.harness import Harness

pytestmark = pytest.mark.slow
CHILDREN = 1000


def reports() -> list[Any]:
    """Per child a diagnosis, a treatment and a follow-up; every tenth child reserved afterwards."""
    events: list[Any] = []
    for i in range(CHILDREN):
        kid = f.child(f"perf-{uuid.uuid4()}", date(2010, 1, 1) + timedelta(days=i % 2500))
        events += [
            f.diagnosis(kid, date(2020, 1, 1)),
            f.treatment(kid, date(2020, 1, 5)),
            f.follow_up(kid, date(2021, 1, 1)),
        ]
        if i % 10 == 0:
            events.append(f.reserved(kid))
    return events


async def measure(h: Harness, label: str) -> None:
    events = reports()
    started = time.perf_counter()
    for start in range(0, len(events), 500):  # the consumer's default max_batch
        await h.consume(*events[start : start + 500])
    handled = time.perf_counter() - started
    started = time.perf_counter()
    result = await h.deliver()
    delivered = time.perf_counter() - started
    counts = await application.status(h.sessions)
    assert counts.pending == 0
    assert result.delivered == counts.sent + counts.retracted
    print(
        f"\n{label}: handler {len(events) / handled:,.0f} events/s ({len(events)} events, batches of 500); "
        f"delivery {result.delivered / delivered:,.0f} transfers/s ({result.delivered}, batches of 500)"
    )
    assert len(events) / handled > 500
    assert result.delivered / delivered > 500


async def test_throughput_sqlite_to_sql_sink(sql_harness: Harness) -> None:
    await measure(sql_harness, "SQLite, SQL sink on SQLite")


async def test_throughput_sqlite_to_file_drop(tmp_path: Path, export_template: Path) -> None:
    h = Harness(tmp_path, export_template, "file")
    try:
        await measure(h, "SQLite, file drop")
    finally:
        await h.close()


@pytest.mark.postgres
async def test_throughput_postgres_to_sql_sink_on_postgres(
    postgres_url: str, postgres_server: Any, tmp_path: Path
) -> None:
    from services.export.storage import MIGRATIONS
    from shared.db import create_engine
    from shared.db.migrations import upgrade

    engine = create_engine(postgres_url)
    await upgrade(engine, MIGRATIONS)
    await engine.dispose()
    nordic = f"nordic_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(nordic)
    h = Harness(tmp_path, tmp_path, "sql", export_url=postgres_url, nordic_url=postgres_server.url(nordic))
    try:
        await measure(h, "PostgreSQL, SQL sink on PostgreSQL")
    finally:
        await h.close()
        postgres_server.drop_database(nordic)
