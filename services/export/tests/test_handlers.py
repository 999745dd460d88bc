"""The consumer wiring on FastStream's in-memory broker: both input topics reach the use case.
(Delivery and durability are tested on the real broker.)"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from faststream.kafka import TestKafkaBroker

from services.export import application
from services.export.app import create_app
from services.export.settings import ExportSettings
from services.export.storage import MIGRATIONS
from services.export.tests.factories import child, diagnosis, reserved
from shared.db.migrations import upgrade
from shared.topics import RESERVATIONS, SUBMISSIONS_VALIDATED


async def test_validated_reports_and_reservations_reach_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPORT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'export.db'}")
    monkeypatch.setenv("EXPORT_SINK_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'nordic.db'}")
    monkeypatch.setenv("EXPORT_PSEUDONYM_KEY", "k" * 43)
    settings = ExportSettings()  # from the environment
    app = create_app(settings)
    service = app.state.service
    await upgrade(service.engine, MIGRATIONS)
    kid = child(400, date(2015, 1, 1))
    report, reservation = diagnosis(kid, date(2020, 1, 1)), reserved(kid)

    async with TestKafkaBroker(service.broker) as broker:
        await broker.publish(report.to_json(), settings.kafka.topic(SUBMISSIONS_VALIDATED), key=kid.pseudonym.encode())
        assert (await application.status(service.sessions)).pending == 1
        await broker.publish(reservation.to_json(), settings.kafka.topic(RESERVATIONS), key=kid.pseudonym.encode())

    counts = await application.status(service.sessions)
    assert (counts.pending, counts.cancelled, counts.reserved_children) == (0, 1, 1)
    await service.engine.dispose()
