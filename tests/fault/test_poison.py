"""Poison messages written straight to every topic a service consumes: not JSON, the wrong schema, huge, and
a well-formed event under the wrong key. Each must reach the dead-letter topic once per consuming group,
with where it came from, the original bytes and the reason; and the next good message on the same
partition must still be processed by every consumer.

The good messages are a real flow sent after the poison: a diagnosis (accepted) and an erroneous treatment
(rejected) for one child through the HTTP API, a diagnosis for another child on the hospitals' inbound
topic, and then a reservation for the first child. The poison is written to exactly the partitions those
good messages land on, so every consumer has to get past it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka.partitioner import murmur2

from deploy.ops.clients import producer, read_to_end
from deploy.synthetic.identity import synthetic_number
from services.intake.crypto import Purpose, Sealer
from shared.events import (
    DeadLetter,
)
from shared.topics import (
    DEAD_LETTERS,
    HOSPITAL_INBOUND,
    RECEIPTS,
    RESERVATIONS,
    SUBMISSIONS_RECEIVED,
    SUBMISSIONS_REJECTED,
    SUBMISSIONS_VALIDATED,
    TopicSpec,
)
from tests.fault.harness import ARTIFACTS, FaultPlatform, _key, log, sink_rows
from tests.fixtures.forms import diagnosis_submission

pytestmark = [pytest.mark.fault, pytest.mark.kafka, pytest.mark.slow, pytest.mark.e2e]

BAD_INPUT = ARTIFACTS.parent / "bad-input"
HOSPITAL = "unn"
HUGE = 900_000  # bytes: under the broker's 1 MB message limit, so a producer can write it
INBOUND_GROUP = "intake-inbound"
CONSUMED = (SUBMISSIONS_RECEIVED, SUBMISSIONS_VALIDATED, SUBMISSIONS_REJECTED, RECEIPTS, RESERVATIONS)


@pytest.fixture
def platform(kafka_bootstrap: str, tmp_path: Path) -> Iterator[FaultPlatform]:
    platform = FaultPlatform(tmp_path, kafka_bootstrap)
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


@dataclass(frozen=True)
class Poison:
    topic: TopicSpec
    kind: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


def _rekeyed(template: bytes, stranger: str) -> bytes:
    """A real event of the topic as a new event (new id) about another child: well-formed, and under the
    wrong key it is poison all the same."""
    event = orjson.loads(template)
    event["event_id"] = str(uuid.uuid4())
    if "child" in event:
        event["child"]["pseudonym"] = stranger
    if "child_pseudonym" in event:
        event["child_pseudonym"] = stranger
    return orjson.dumps(event)


def _poisons(spec: TopicSpec, right_key: bytes, well_formed: bytes) -> list[Poison]:
    headers = (("hospital-id", HOSPITAL.encode()),) if spec is HOSPITAL_INBOUND else ()
    padding = b'{"padding": "' + b"x" * HUGE + b'"}'
    return [
        Poison(spec, "not JSON", right_key, b"\x00\xff this is not JSON {", headers),
        Poison(spec, "wrong schema", right_key, b'{"event_type": "submission.received", "hello": 1}', headers),
        Poison(spec, "huge", right_key, padding, headers),
        Poison(spec, "wrong key", b"not-the-right-key", well_formed, headers),
    ]


def _partition(key: bytes, partitions: int) -> int:
    """Where Kafka's default partitioner puts `key` (murmur2, as the Java client and aiokafka do)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def _groups(spec: TopicSpec) -> tuple[str, ...]:
    return (INBOUND_GROUP,) if spec is HOSPITAL_INBOUND else spec.consumer_groups


def _national_ids(count: int, start: int = 700) -> list[str]:
    """Synthetic identity numbers (girls born 2014-02-03) no other test here uses."""
    numbers = (synthetic_number(date(2014, 2, 3), male=False, individual=i) for i in range(start, 1000, 2))
    return [number for number in numbers if number is not None][:count]


async def _negated(probe: Callable[[], Any]) -> bool:
    return not await probe()


async def eventually(probe: Callable[[], Any], what: str, within: float = 120.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"not reached within {within} s: {what}"
        await asyncio.sleep(0.5)


DIAGNOSED = date.today() - timedelta(days=30)


def _diagnosis(hospital: str, national_id: str, tumour_ref: str) -> dict[str, Any]:
    return diagnosis_submission(hospital, national_id, tumour_ref, diagnosed=DIAGNOSED)


def _early_treatment(diagnosis: dict[str, Any]) -> dict[str, Any]:
    """A treatment report for the diagnosis' tumour that started a year before it: validation rejects it."""
    form = {
        "form_type": "treatment",
        "tumour_ref": diagnosis["form"]["tumour_ref"],
        "modality": "chemotherapy",
        "start_date": (DIAGNOSED - timedelta(days=400)).isoformat(),
    }
    return {**diagnosis, "submission_id": str(uuid.uuid4()), "form": form}


async def test_poison_on_every_consumed_topic_is_dead_lettered_and_the_next_good_message_processed(
    platform: FaultPlatform,
) -> None:
    kafka = platform.kafka
    first, second, template_child, stranger_child = _national_ids(4)
    pseudonym = platform.pseudonym(first)
    intake, stats = platform.url("intake"), platform.url("stats")
    hospital, staff = platform.headers(HOSPITAL), platform.headers("staff")
    client = httpx.AsyncClient(timeout=30.0)

    async def post(path: str, body: dict[str, Any], headers: dict[str, str], status: int) -> None:
        answer = await client.post(f"{intake}{path}", json=body, headers=headers)
        assert answer.status_code == status, answer.text

    async def receipt(submission_id: str, headers: dict[str, str]) -> str | None:
        found = await client.get(f"{intake}/v1/receipts/{submission_id}", headers=headers)
        status = found.json()["status"] if found.status_code == 200 else None
        return status if status in ("accepted", "rejected") else None

    try:
        # 0. Real events of every topic, from another hospital, to copy under a wrong key.
        template = _diagnosis("haukeland", template_child, "TEMPLATE-1")
        template_treatment = _early_treatment(template)
        haukeland = platform.headers("haukeland")
        await post("/v1/submissions", template, haukeland, 202)
        await post("/v1/submissions", template_treatment, haukeland, 202)
        for submission in (template, template_treatment):
            await eventually(lambda s=submission: receipt(s["submission_id"], haukeland), "template decided")
        await post("/v1/reservations", {"national_id": template_child}, staff, 201)
        samples: dict[str, bytes] = {}

        async def sampled() -> bool:
            for record in await read_to_end(kafka, [kafka.topic(spec) for spec in CONSUMED]):
                samples.setdefault(record.topic, record.value)
            return len(samples) == len(CONSUMED)

        await eventually(sampled, "an event on every consumed topic")

        # 1. The poison, on the partitions the good messages will take.
        stranger = platform.pseudonym(stranger_child)
        well_formed_inbound = orjson.dumps(_diagnosis(HOSPITAL, stranger_child, "POISON-1"))
        written: list[tuple[Poison, int, int]] = []
        async with producer(kafka) as kafka_producer:
            for spec in (*CONSUMED, HOSPITAL_INBOUND):
                right_key = (HOSPITAL if spec in (RECEIPTS, HOSPITAL_INBOUND) else pseudonym).encode()
                partition = _partition(right_key, spec.partitions)
                sample = samples.get(kafka.topic(spec))
                well_formed = well_formed_inbound if sample is None else _rekeyed(sample, stranger)
                for poison in _poisons(spec, right_key, well_formed):
                    sent = await kafka_producer.send_and_wait(
                        kafka.topic(spec),
                        poison.value,
                        key=poison.key,
                        partition=partition,
                        headers=list(poison.headers),
                    )
                    written.append((poison, sent.partition, sent.offset))
        log(f"poison: {len(written)} records written to {len(CONSUMED) + 1} topics")

        # 2. The good messages, after the poison on the same partitions.
        diagnosis = _diagnosis(HOSPITAL, first, "GOOD-1")
        treatment = _early_treatment(diagnosis)
        inbound = _diagnosis(HOSPITAL, second, "GOOD-2")
        await post("/v1/submissions", diagnosis, hospital, 202)
        await post("/v1/submissions", treatment, hospital, 202)
        async with producer(kafka) as kafka_producer:
            await kafka_producer.send_and_wait(
                kafka.topic(HOSPITAL_INBOUND),
                orjson.dumps(inbound),
                key=HOSPITAL.encode(),
                headers=[("hospital-id", HOSPITAL.encode())],
            )

        # intake (validated, rejected, inbound) and validation (received) got past their poison ...
        for body, expected in ((diagnosis, "accepted"), (treatment, "rejected"), (inbound, "accepted")):
            decided = await eventually(lambda b=body: receipt(b["submission_id"], hospital), f"{expected} receipt")
            assert decided == expected

        # ... stats (validated, rejected, receipts) ...
        async def counted() -> bool:
            answer = await client.get(f"{stats}/stats/{HOSPITAL}", headers=hospital)
            counts = answer.json()["total"]["submissions"] if answer.status_code == 200 else {}
            diagnoses, treatments = counts.get("diagnosis", {}), counts.get("treatment", {})
            return diagnoses == {"received": 2, "accepted": 2, "rejected": 0} and treatments == {
                "received": 1,
                "accepted": 0,
                "rejected": 1,
            }

        await eventually(counted, "stats counted the good messages and nothing of the poison")

        # ... and export (validated, then reservations).
        record_id = platform.export_ids.record(f"{pseudonym}/{HOSPITAL}/GOOD-1/diagnosis")
        in_sink = lambda: asyncio.to_thread(lambda: record_id in sink_rows(platform.nordic_db))  # noqa: E731
        await eventually(in_sink, "transfer of the good diagnosis")
        await post("/v1/reservations", {"national_id": first}, staff, 201)
        await eventually(lambda: _negated(in_sink), "retraction after the good reservation")
    finally:
        await client.aclose()

    # 3. Every poison record is a dead letter once per consuming group, with its origin, bytes and reason.
    letters: dict[tuple[str, int, int, str], list[DeadLetter]] = defaultdict(list)
    for record in await read_to_end(kafka, [kafka.topic(DEAD_LETTERS)]):
        letter = DeadLetter.from_json(record.value)
        letters[letter.source_topic, letter.partition, letter.offset, letter.consumer_group].append(letter)
    sealer = Sealer(_key(platform.platform.secrets()["INTAKE_VAULT_KEY"]), Purpose.DEAD_LETTERS)
    outcome: dict[str, dict[str, str]] = defaultdict(dict)
    problems = []
    for poison, partition, offset in written:
        topic = kafka.topic(poison.topic)
        for group in _groups(poison.topic):
            found = letters.pop((topic, partition, offset, group), [])
            where = f"{poison.topic.name} [{poison.kind}] for {group}"
            if len(found) != 1:
                problems.append(f"{where}: {len(found)} dead letters")
                continue
            [letter] = found
            value = base64.b64decode(letter.value_b64)
            if letter.value_encoding == "fernet":
                assert poison.topic is HOSPITAL_INBOUND  # sealed: it may hold identity numbers
                value = sealer.open(value)
            if value != poison.value or letter.key_b64 != base64.b64encode(poison.key).decode():
                problems.append(f"{where}: the letter does not carry the original record")
            if not letter.error or not letter.error_type:
                problems.append(f"{where}: no reason given")
            outcome[poison.topic.name][poison.kind] = f"{letter.error_type}: {letter.error[:80]}"
    assert not problems, "\n".join(problems)
    assert not letters, f"dead letters of records that were not poison: {list(letters)[:5]}"

    BAD_INPUT.mkdir(parents=True, exist_ok=True)
    (BAD_INPUT / "poison.json").write_text(
        json.dumps(
            {
                "name": "poison",
                "title": "poison messages on every consumed topic",
                "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "sent": f"{len(written)} records: not JSON, wrong schema, {HUGE:,} bytes, wrong key; on "
                + ", ".join(spec.name for spec in (*CONSUMED, HOSPITAL_INBOUND)),
                "outcome": f"{sum(len(_groups(p.topic)) for p, _, _ in written)} dead letters, one per record and "
                "consuming group, each with the original bytes and its reason; the good messages after "
                "them accepted, rejected, counted, transferred and retracted",
                "reasons": outcome,
            },
            indent=2,
        )
        + "\n"
    )
