"""The consumer wiring on FastStream's in-memory broker: input topics reach the use case, reminders leave
on the reminders topic keyed by hospital. (Delivery and durability are tested on the real broker.)"""

from __future__ import annotations

from datetime import date

from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.stats.app import MIGRATIONS, create_app
from services.stats.application import StatsApplication
from services.stats.tests.conftest import ManualClock, stats_settings
from services.stats.tests.factories import child, diagnosis, receipt
from shared.db.migrations import upgrade
from shared.events import FormType, ReminderChanged
from shared.events.stats import ReminderStatus
from shared.topics import RECEIPTS, REMINDERS, SUBMISSIONS_VALIDATED


async def _undecoded(*_: object) -> None:
    return None


async def test_input_topics_reach_the_projection_and_reminders_leave_keyed_by_hospital(
    sqlite_url: str, clock: ManualClock
) -> None:
    settings = stats_settings(sqlite_url)
    app = create_app(settings, clock)
    service = app.state.service
    stats: StatsApplication = app.state.stats
    await upgrade(service.engine, MIGRATIONS)
    seen: list[tuple[bytes | None, ReminderChanged]] = []

    @service.broker.subscriber(settings.kafka.topic(REMINDERS), decoder=_undecoded)
    async def reminders(message: KafkaMessage) -> None:  # what a hospital-facing consumer would read
        seen.append((message.raw_message.key, ReminderChanged.from_json(message.body)))  # type: ignore[union-attr]

    clock.set_day(date(2024, 6, 1))
    outcome = diagnosis("unn", child("siv", "2014-02-02", "female"), "U-1", "2024-04-01", "2024-04-03")
    async with TestKafkaBroker(service.broker) as broker:
        await broker.publish(receipt(outcome).to_json(), settings.kafka.topic(RECEIPTS), key=b"unn")
        await broker.publish(
            outcome.to_json(), settings.kafka.topic(SUBMISSIONS_VALIDATED), key=outcome.child.pseudonym.encode()
        )

    current = await stats.current("unn")
    assert current.total.tumours == 1
    assert current.total.submissions[FormType.DIAGNOSIS].received == 1
    [(key, reminder)] = seen
    assert key == b"unn"
    assert (reminder.tumour_ref, reminder.status) == ("U-1", ReminderStatus.OPEN)
    await service.engine.dispose()
