"""Dead letters: list them, show one decoded, and redrive them to the topic they came from.

Which letters were redriven is recorded on the compacted topic `registry.dead-letters.redriven`, one
record per dead letter keyed by the letter's event id, written once the redriven record is acknowledged.
A later redrive reads it (it stays small: one record per redriven letter) and skips those letters, and
also any other letter of the same source record (a record dead-lettered twice by a redelivery). Reading
that small topic is cheap where scanning the source topics for a header would grow with the registry.

If the command dies between a record's acknowledgement and its marker, the next `--all` redrives that
letter again: the source topic then holds the record twice, and its consumer skips the second as an event
id it has already processed, so operators see an extra record and some lag, never a second effect.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata
from pydantic import AwareDatetime, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from deploy.ops import OpsError
from deploy.ops.clients import Progress, admin_client, consumer, partitions_of, producer, read_at, read_to_end
from services.intake.crypto import InvalidToken, Purpose, Sealer
from shared.events import DeadLetter, StrictModel
from shared.events.base import utcnow
from shared.kafka.producer import JSON_HEADERS
from shared.settings import KafkaSettings, SecretKey, key_bytes, load_settings
from shared.topics import DEAD_LETTERS, DEAD_LETTERS_REDRIVEN


@dataclass(frozen=True, slots=True)
class LetterId:
    """A dead letter's place on the dead-letter topic: `partition:offset`, or a bare offset that names a
    letter only if no other partition has one at that offset."""

    offset: int
    partition: int | None = None

    @classmethod
    def parse(cls, text: str) -> LetterId:
        partition, _, offset = text.rpartition(":")
        try:
            parsed = cls(int(offset), int(partition) if partition else None)
        except ValueError:
            raise OpsError(f"{text!r} is not a dead letter: give PARTITION:OFFSET (as listed) or OFFSET") from None
        if parsed.offset < 0 or (parsed.partition or 0) < 0:
            raise OpsError(f"{text!r} is not a dead letter: offsets and partitions are not negative")
        return parsed

    def __str__(self) -> str:
        return str(self.offset) if self.partition is None else f"{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class StoredLetter:
    partition: int
    offset: int
    letter: DeadLetter

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def source(self) -> tuple[str, int, int]:
        return self.letter.source_topic, self.letter.partition, self.letter.offset


class Redriven(StrictModel):
    """The marker of one redriven dead letter (value on `registry.dead-letters.redriven`)."""

    dead_letter_event_id: uuid.UUID
    dead_letter: str  # partition:offset on the dead-letter topic
    source_topic: str
    source_partition: int
    source_offset: int
    redriven_partition: int  # where the record is now
    redriven_offset: int
    redriven_at: AwareDatetime
    redriven_by: str


@dataclass(frozen=True, slots=True)
class Listing:
    letters: list[StoredLetter]
    redriven: dict[uuid.UUID, Redriven]
    undecodable: list[str] = field(default_factory=list)  # ids of records that are not dead letters

    def marker_for(self, stored: StoredLetter) -> Redriven | None:
        """The letter's redrive, or that of another letter of the same source record."""
        if marker := self.redriven.get(stored.letter.event_id):
            return marker
        return next((m for m in self.redriven.values() if _source_of(m) == stored.source), None)


def _source_of(marker: Redriven) -> tuple[str, int, int]:
    return marker.source_topic, marker.source_partition, marker.source_offset


def matches_source(settings: KafkaSettings, letter: DeadLetter, source_topic: str | None) -> bool:
    """`--source-topic` takes the platform name (`intake.submissions.received`) or the prefixed one."""
    return source_topic is None or letter.source_topic in (source_topic, settings.topic_prefix + source_topic)


def latest(letters: Sequence[StoredLetter], limit: int) -> list[StoredLetter]:
    """The `limit` most recent letters, oldest first."""
    ordered = sorted(letters, key=lambda s: (s.letter.failed_at, s.partition, s.offset))
    return ordered[-limit:] if limit > 0 else []


async def list_dead_letters(
    settings: KafkaSettings, source_topic: str | None = None, on_progress: Progress | None = None
) -> Listing:
    """Every dead letter (from `source_topic` only, if given) and every redrive marker."""
    letters, undecodable = [], []
    for record in await read_to_end(settings, [settings.topic(DEAD_LETTERS)], on_progress):
        try:
            letter = DeadLetter.from_json(record.value or b"")
        except ValidationError:
            undecodable.append(f"{record.partition}:{record.offset}")
            continue
        if matches_source(settings, letter, source_topic):
            letters.append(StoredLetter(record.partition, record.offset, letter))
    return Listing(letters, await redriven_markers(settings), undecodable)


async def redriven_markers(settings: KafkaSettings) -> dict[uuid.UUID, Redriven]:
    markers: dict[uuid.UUID, Redriven] = {}
    for record in await read_to_end(settings, [settings.topic(DEAD_LETTERS_REDRIVEN)]):
        if record.value is not None:  # compaction keeps the latest per key; a tombstone clears it
            marker = Redriven.from_json(record.value)
            markers[marker.dead_letter_event_id] = marker
    return markers


async def fetch_letters(settings: KafkaSettings, ids: Sequence[LetterId]) -> list[StoredLetter]:
    """The letters at these places; an id that names none, or a bare offset that names several, is an error."""
    topic = settings.topic(DEAD_LETTERS)
    found = []
    partitions = await partitions_of(settings, [topic])
    async with consumer(settings) as client:
        for letter_id in ids:
            hits = []
            for tp in partitions:
                if letter_id.partition in (None, tp.partition):
                    record = await read_at(client, tp, letter_id.offset)
                    if record is not None:
                        hits.append(record)
            if not hits:
                raise OpsError(f"no dead letter at {letter_id} on {topic} (see `registry deadletters list`)")
            if len(hits) > 1:
                where = ", ".join(f"{r.partition}:{r.offset}" for r in hits)
                raise OpsError(f"offset {letter_id.offset} names a letter on several partitions: {where}; pick one")
            [record] = hits
            try:
                found.append(StoredLetter(record.partition, record.offset, DeadLetter.from_json(record.value or b"")))
            except ValidationError as exc:
                raise OpsError(f"the record at {record.partition}:{record.offset} is not a dead letter") from exc
    return found


async def fetch_letter(settings: KafkaSettings, letter_id: LetterId) -> tuple[StoredLetter, Redriven | None]:
    """One letter, and its redrive marker if it was redriven."""
    [stored] = await fetch_letters(settings, [letter_id])
    return stored, Listing([stored], await redriven_markers(settings)).marker_for(stored)


# -- the original value --------------------------------------------------------------------------


class IntakeVaultKey(BaseSettings):
    """Only the vault key of intake's settings: what unsealing an inbound dead letter needs."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore")
    vault_key: SecretKey


def vault_key_from_env() -> bytes:
    """INTAKE_VAULT_KEY from the environment; a SettingsError names it when missing or malformed."""
    return key_bytes(load_settings(IntakeVaultKey).vault_key)


class SealedError(OpsError):
    pass


def original_value(letter: DeadLetter, vault_key: bytes | None = None) -> bytes:
    """The bytes the consumer failed on. A sealed value (the source may carry identity numbers) opens
    only with intake's vault key, under the key intake derives for its dead letters."""
    value = base64.b64decode(letter.value_b64)
    if letter.value_encoding == "base64":
        return value
    if vault_key is None:
        raise SealedError(
            "the value is sealed (fernet): it may hold identity numbers. Pass --unseal with INTAKE_VAULT_KEY set"
        )
    try:
        return Sealer(vault_key, Purpose.DEAD_LETTERS).open(value)
    except InvalidToken:
        raise SealedError("the value does not open with this INTAKE_VAULT_KEY (another environment's key?)") from None


def original_key(letter: DeadLetter) -> bytes | None:
    return None if letter.key_b64 is None else base64.b64decode(letter.key_b64)


def original_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    return [(name, base64.b64decode(value)) for name, value in letter.headers]


def readable(raw: bytes) -> tuple[Literal["json", "text", "base64"], Any]:
    """How to show bytes: parsed JSON when they are JSON, else text when printable UTF-8 (control
    characters would garble a terminal), else base64."""
    try:
        return "json", json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        pass
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\n\r\t" for c in text):
        return "text", text
    return "base64", base64.b64encode(raw).decode()


# -- redrive -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RedrivePlan:
    selected: list[StoredLetter]
    skipped: list[tuple[StoredLetter, str]]


def select_for_redrive(
    letters: Sequence[StoredLetter],
    markers: dict[uuid.UUID, Redriven],
    *,
    force: bool = False,
    can_unseal: bool = False,
) -> RedrivePlan:
    """Which letters to redrive: not those already redriven (unless `force`), nor a second letter of the
    same source record, nor sealed ones without the key."""
    redriven_sources = {_source_of(m): m for m in markers.values()}
    selected: list[StoredLetter] = []
    skipped: list[tuple[StoredLetter, str]] = []
    chosen_sources: dict[tuple[str, int, int], StoredLetter] = {}
    for stored in sorted(letters, key=lambda s: (s.letter.failed_at, s.partition, s.offset)):
        marker = markers.get(stored.letter.event_id) or redriven_sources.get(stored.source)
        if marker is not None and not force:
            when = marker.redriven_at.isoformat(timespec="seconds")
            skipped.append((stored, f"already redriven {when} by {marker.redriven_by} (letter {marker.dead_letter})"))
        elif stored.source in chosen_sources:
            skipped.append((stored, f"the same source record as letter {chosen_sources[stored.source].id}"))
        elif stored.letter.value_encoding == "fernet" and not can_unseal:
            skipped.append((stored, "sealed (may hold identity numbers): needs --unseal with INTAKE_VAULT_KEY"))
        else:
            selected.append(stored)
            chosen_sources[stored.source] = stored
    return RedrivePlan(selected, skipped)


async def plan_redrive(
    settings: KafkaSettings,
    ids: Sequence[LetterId] | None,
    *,
    source_topic: str | None = None,
    force: bool = False,
    can_unseal: bool = False,
    on_progress: Progress | None = None,
) -> RedrivePlan:
    """`ids`, or every dead letter when None, narrowed to `source_topic`. `force` redrives named letters
    again; `--all` never does, so running it twice is safe."""
    elsewhere: list[tuple[StoredLetter, str]] = []
    if ids is None:
        listing = await list_dead_letters(settings, source_topic, on_progress)
        letters, markers = listing.letters, listing.redriven
    else:
        named = await fetch_letters(settings, ids)
        letters = [s for s in named if matches_source(settings, s.letter, source_topic)]
        elsewhere = [(s, f"from {s.letter.source_topic}, not {source_topic}") for s in named if s not in letters]
        markers = await redriven_markers(settings)
    plan = select_for_redrive(letters, markers, force=force and ids is not None, can_unseal=can_unseal)
    return RedrivePlan(plan.selected, elsewhere + plan.skipped)


@dataclass(frozen=True, slots=True)
class RedriveResult:
    redriven: list[Redriven]
    failed: list[tuple[StoredLetter, str]]


async def redrive(
    settings: KafkaSettings,
    plan: RedrivePlan,
    vault_key: bytes | None = None,
    on_progress: Progress | None = None,
) -> RedriveResult:
    """Produce each selected letter's original key, value and headers to its source topic and partition
    (acks=all), then record it as redriven."""
    async with admin_client(settings) as admin:
        existing = set(await admin.list_topics())
    failed: list[tuple[StoredLetter, str]] = []
    sent = []
    async with producer(settings) as client:
        for stored in plan.selected:
            letter = stored.letter
            if letter.source_topic not in existing:
                failed.append((stored, f"{letter.source_topic} does not exist"))
                continue
            try:
                value = original_value(letter, vault_key)
                future = await client.send(
                    letter.source_topic,
                    value,
                    key=original_key(letter),
                    partition=letter.partition,  # where it was: the child's other records are there
                    headers=original_headers(letter),
                )
            except (OpsError, KafkaError, ValueError) as exc:  # reported; the other letters still go
                failed.append((stored, str(exc) or type(exc).__name__))
                continue
            sent.append((stored, future))
        markers = []
        user = _operator()
        for done, (stored, future) in enumerate(sent, 1):
            try:
                metadata = await future
            except KafkaError as exc:
                failed.append((stored, f"not redriven: {exc!r}"))
                continue
            marker = Redriven(
                dead_letter_event_id=stored.letter.event_id,
                dead_letter=stored.id,
                source_topic=stored.letter.source_topic,
                source_partition=stored.letter.partition,
                source_offset=stored.letter.offset,
                redriven_partition=metadata.partition,
                redriven_offset=metadata.offset,
                redriven_at=utcnow(),
                redriven_by=user,
            )
            markers.append((stored, marker, await _send_marker(client, settings, marker)))
            if on_progress:
                on_progress(done, len(sent))
        recorded = []
        for stored, marker, future in markers:
            try:
                await future
            except KafkaError as exc:
                where = f"partition {marker.redriven_partition} offset {marker.redriven_offset}"
                failed.append((stored, f"redriven to {where} but not recorded ({exc!r}): --all would redrive it again"))
                continue
            recorded.append(marker)
    return RedriveResult(recorded, failed)


async def _send_marker(
    client: AIOKafkaProducer, settings: KafkaSettings, marker: Redriven
) -> asyncio.Future[RecordMetadata]:
    return await client.send(
        settings.topic(DEAD_LETTERS_REDRIVEN),
        marker.to_json(),
        key=str(marker.dead_letter_event_id).encode(),
        headers=[(k, v.encode()) for k, v in JSON_HEADERS.items()],
    )


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"
