"""The validation service on a real Kafka broker: per-child order, exactly-once effects, dead letters.

Each test runs the service as `registry serve validation` would (create_app, then the lifespan's
start/stop) on topics of its own prefix, produces to the received topic and reads the output topics.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

import services.validation.application as application
from services.validation.app import create_app
from services.validation.settings import ValidationSettings
from services.validation.tests.builders import diagnosis, follow_up, pseudonym, received, treatment
from shared.events import DeadLetter, SubmissionReceived, SubmissionRejected, SubmissionValidated
from shared.kafka import create_broker
from shared.service import Service
from shared.settings import KafkaSettings
from shared.topics import DEAD_LETTERS, SUBMISSIONS_RECEIVED, SUBMISSIONS_REJECTED, SUBMISSIONS_VALIDATED

pytestmark = pytest.mark.kafka


@asynccontextmanager
async def running(kafka: KafkaSettings, database_url: str) -> AsyncIterator[Service]:
    app = create_app(ValidationSettings(database_url=database_url, kafka=kafka))
    service: Service = app.state.service
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def produce(kafka: KafkaSettings, records: Iterable[tuple[bytes, bytes]]) -> None:
    broker = create_broker(kafka, "test-hospital-feed")
    async with broker:
        for key, value in records:
            await broker.publish(value, kafka.topic(SUBMISSIONS_RECEIVED), key=key)


def keyed(*events: SubmissionReceived) -> list[tuple[bytes, bytes]]:
    return [(event.child.pseudonym.encode(), event.to_json()) for event in events]


class Outputs:
    """Everything on the output topics, read from the start, in partition order."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.records: list[Any] = []
        self._consumer = AIOKafkaConsumer(
            kafka.topic(SUBMISSIONS_VALIDATED),
            kafka.topic(SUBMISSIONS_REJECTED),
            kafka.topic(DEAD_LETTERS),
            bootstrap_servers=kafka.bootstrap_servers,
            auto_offset_reset="earliest",
            group_id=None,
        )

    async def __aenter__(self) -> Outputs:
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def until(self, done: Callable[[Outputs], bool], within: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while not done(self):
            remaining = deadline - asyncio.get_running_loop().time()
            assert remaining > 0, f"{len(self.records)} records after {within} s"
            batches = await self._consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for records in batches.values():
                self.records.extend(records)

    async def settle(self, seconds: float) -> None:
        """Keep reading for a while: what should not appear has had time to."""
        deadline = asyncio.get_running_loop().time() + seconds
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            for records in (await self._consumer.getmany(timeout_ms=int(remaining * 1000) + 1)).values():
                self.records.extend(records)

    def on(self, spec: Any) -> list[Any]:
        return [record for record in self.records if record.topic == self.kafka.topic(spec)]

    def validated(self) -> list[SubmissionValidated]:
        return [SubmissionValidated.from_json(r.value) for r in self.on(SUBMISSIONS_VALIDATED)]

    def rejected(self) -> list[SubmissionRejected]:
        return [SubmissionRejected.from_json(r.value) for r in self.on(SUBMISSIONS_REJECTED)]

    def dead(self) -> list[DeadLetter]:
        return [DeadLetter.from_json(r.value) for r in self.on(DEAD_LETTERS)]

    def outcomes(self) -> int:
        return len(self.on(SUBMISSIONS_VALIDATED)) + len(self.on(SUBMISSIONS_REJECTED))


def child_story(child: int) -> tuple[list[SubmissionReceived], list[int], list[int]]:
    """Five forms whose outcomes depend on their order: a treatment that was fine becomes one that
    starts before the diagnosis once the diagnosis is corrected. Returns the events and the indexes
    expected validated and rejected."""
    first = received(diagnosis(), child=child)
    events = [
        first,
        received(treatment(start_date=date(2024, 2, 5)), child=child),
        received(diagnosis(diagnosis_date=date(2024, 2, 10)), child=child, supersedes=first.submission_id),
        received(treatment(start_date=date(2024, 2, 5)), child=child),  # now before the diagnosis
        received(follow_up(last_contact_date=date(2024, 2, 20)), child=child),
    ]
    return events, [0, 1, 2, 4], [3]


@pytest.mark.postgres
async def test_each_childs_forms_are_decided_in_order(kafka_settings: KafkaSettings, postgres_url: str) -> None:
    stories = {child: child_story(child) for child in range(1, 25)}
    # Interleave the children, as hospitals do; each child's forms stay in order on one partition.
    interleaved = [stories[c][0][i] for i in range(5) for c in stories]
    async with Outputs(kafka_settings) as outputs, running(kafka_settings, postgres_url):
        await produce(kafka_settings, keyed(*interleaved))
        await outputs.until(lambda o: o.outcomes() == len(interleaved))

    by_child: dict[str, tuple[list[uuid.UUID], list[uuid.UUID]]] = defaultdict(lambda: ([], []))
    for outcome in outputs.validated():
        by_child[outcome.child.pseudonym][0].append(outcome.received_event_id)
    for rejection in outputs.rejected():
        by_child[rejection.child.pseudonym][1].append(rejection.received_event_id)
        assert [f.code for f in rejection.findings] == ["DATE_ORDER"]
    for child, (events, accepted, rejected) in stories.items():
        assert by_child[pseudonym(child)] == (
            [events[i].event_id for i in accepted],
            [events[i].event_id for i in rejected],
        )
    keys = {record.key for record in outputs.on(SUBMISSIONS_VALIDATED) + outputs.on(SUBMISSIONS_REJECTED)}
    assert keys == {pseudonym(child).encode() for child in stories}  # keyed by the child's pseudonym


async def test_repeated_and_replayed_events_are_decided_once(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'validation.db'}"
    first, second, third = (
        received(diagnosis(), child=1),
        received(treatment(), child=1),
        received(follow_up(), child=1),
    )
    async with Outputs(kafka_settings) as outputs:
        async with running(kafka_settings, database):
            await produce(kafka_settings, keyed(first, first, second))  # a relay that sent one twice
            await outputs.until(lambda o: o.outcomes() == 2)
        # A restart continues from the committed offsets; a republished event is recognised.
        async with running(kafka_settings, database):
            await produce(kafka_settings, keyed(second, third))
            await outputs.until(lambda o: o.outcomes() == 3)
            await outputs.settle(1.0)
    assert [o.received_event_id for o in outputs.validated()] == [first.event_id, second.event_id, third.event_id]
    assert outputs.rejected() == []


async def test_poison_messages_go_to_dead_letters_and_the_service_keeps_going(
    kafka_settings: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison = received(diagnosis(tumour_ref="T-poison"), child=2)
    real_assess = application.assess

    def assess_or_fail(case: Any, *args: Any) -> Any:
        if case.submission_id == poison.submission_id:
            raise RuntimeError("cannot assess this one")
        return real_assess(case, *args)

    monkeypatch.setattr(application, "assess", assess_or_fail)
    wrong_type = received().to_json().replace(b'"submission.received"', b'"submission.lost"')
    good = [received(diagnosis(), child=1), received(treatment(), child=1)]
    records = [(b"x", b"\x00not json"), (b"y", wrong_type), *keyed(poison), *keyed(*good)]
    async with Outputs(kafka_settings) as outputs, running(kafka_settings, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}"):
        await produce(kafka_settings, records)
        await outputs.until(lambda o: len(o.dead()) == 3 and o.outcomes() == 2)

    assert [o.received_event_id for o in outputs.validated()] == [event.event_id for event in good]
    letters = {letter.error_type: letter for letter in outputs.dead()}
    assert set(letters) == {"ValidationError", "RuntimeError"}
    poisoned = letters["RuntimeError"]
    assert (poisoned.error, poisoned.consumer_group, poisoned.attempts) == (
        "RuntimeError: cannot assess this one",
        "validation",
        3,
    )
    assert SubmissionReceived.from_json(base64.b64decode(poisoned.value_b64)) == poison
    assert all(letter.source_topic == kafka_settings.topic(SUBMISSIONS_RECEIVED) for letter in outputs.dead())


async def test_recode_decides_every_submission_again_with_its_history(
    kafka_settings: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from deploy.cli import app

    database = f"sqlite+aiosqlite:///{tmp_path / 'validation.db'}"
    story = [received(diagnosis(), child=1), received(treatment(), child=1)]
    async with Outputs(kafka_settings) as outputs:
        async with running(kafka_settings, database):
            await produce(kafka_settings, keyed(*story))
            await outputs.until(lambda o: o.outcomes() == 2)

        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
        monkeypatch.setenv("KAFKA_TOPIC_PREFIX", kafka_settings.topic_prefix)
        monkeypatch.setenv("VALIDATION_DATABASE_URL", database)
        result = await asyncio.to_thread(CliRunner().invoke, app, ["recode", "--yes"])
        assert result.exit_code == 0, result.output
        assert "2 processed event(s) forgotten" in result.output

        async with running(kafka_settings, database):
            await outputs.until(lambda o: o.outcomes() == 4)
            await outputs.settle(1.0)
    # Decided again in order, the treatment still finds its tumour: the ledger was rebuilt by the replay.
    assert [o.received_event_id for o in outputs.validated()] == [e.event_id for e in story] * 2
    assert outputs.rejected() == []
