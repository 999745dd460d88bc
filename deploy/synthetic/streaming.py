"""Send generated items where hospitals send them: intake's HTTP API or the hospital inbound Kafka topic.

Both keep each child's items in their order (HTTP: one request at a time per child, many children at
once; Kafka: one idempotent producer), can compress the simulated period into a wall-clock duration
(`Pace`), and can show progress through the simulated period (`PeriodProgress`).
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from deploy.synthetic.generator import Item, Kind
from shared.settings import KafkaSettings
from shared.topics import HOSPITAL_INBOUND

# Intake's API (services/intake/api.py).
SUBMISSIONS_PATH = "/v1/submissions"
RESERVATIONS_PATH = "/v1/reservations"
WITHDRAWALS_PATH = "/v1/reservations/withdrawals"
STAFF = "staff"  # the tokens-file key of the registry staff token that records reservations


class StreamError(RuntimeError):
    """Streaming cannot go on (a token refused, intake unreachable); the message says why."""


@dataclass
class StreamReport:
    statuses: Counter[str] = field(default_factory=Counter)  # e.g. "submission 202", "reservation 201"
    skipped: int = 0  # items this destination does not take (reservations on Kafka)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())


class Pace:
    """Simulated time compressed: the period from `start` to `end` takes `seconds` of wall-clock time."""

    def __init__(self, start: datetime, end: datetime, seconds: float) -> None:
        if seconds <= 0 or end <= start:
            raise ValueError("a pace needs a positive duration and a period that ends after it starts")
        self.start = start
        self._factor = seconds / (end - start).total_seconds()
        self._origin: float | None = None

    async def wait_for(self, made_at: datetime) -> None:
        loop = asyncio.get_running_loop()
        if self._origin is None:
            self._origin = loop.time()
        delay = self._origin + (made_at - self.start).total_seconds() * self._factor - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)


class PeriodProgress:
    """A Rich progress bar over the simulated period (on stderr: stdout may carry data)."""

    def __init__(self, start: datetime, end: datetime, console: Console | None = None) -> None:
        self.start = start
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[sent]} items"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
        )
        self._task = self._progress.add_task("sending", total=(end - start).total_seconds(), sent=0, start=False)
        self._sent = 0

    def __enter__(self) -> PeriodProgress:
        self._progress.start()
        self._progress.start_task(self._task)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def advance(self, made_at: datetime) -> None:
        self._sent += 1
        self._progress.update(
            self._task,
            completed=(made_at - self.start).total_seconds(),
            description=made_at.date().isoformat(),
            sent=self._sent,
        )


def request_for(item: Item) -> tuple[str, str, dict[str, Any]]:
    """Path, tokens-file key and body of the request that sends an item: what intake's API expects."""
    if item.kind is Kind.SUBMISSION:
        return SUBMISSIONS_PATH, item.hospital_id, item.payload
    national_id = item.payload["national_id"]
    if item.payload["action"] == "withdraw":
        return WITHDRAWALS_PATH, STAFF, {"national_id": national_id}
    return RESERVATIONS_PATH, STAFF, {"national_id": national_id, "effective_at": item.payload["at"]}


def child_of(item: Item) -> str:
    payload = item.payload
    return str(payload["national_id"] if item.kind is Kind.RESERVATION else payload["patient"]["national_id"])


async def _paced(items: Iterable[Item], pace: Pace | None, progress: PeriodProgress | None) -> AsyncIterator[Item]:
    for item in items:
        if pace is not None:
            await pace.wait_for(item.made_at)
        if progress is not None:
            progress.advance(item.made_at)
        yield item


async def post_http(
    items: Iterable[Item],
    base_url: str,
    tokens: Mapping[str, str],
    *,
    concurrency: int = 16,
    pace: Pace | None = None,
    progress: PeriodProgress | None = None,
    retries: int = 3,
    transport: httpx.AsyncBaseTransport | None = None,
) -> StreamReport:
    """POST every item to intake, each with its hospital's (or the staff) bearer token."""
    report = StreamReport()
    slots = asyncio.Semaphore(concurrency)
    running: set[asyncio.Task[None]] = set()
    tails: dict[str, asyncio.Task[None]] = {}  # each child's latest request: the next one waits for it
    failures: list[Exception] = []

    async def send(client: httpx.AsyncClient, item: Item, before: asyncio.Task[None] | None) -> None:
        try:
            if before is not None:
                await asyncio.wait([before])  # a failure there is reported by that task itself
            path, key, body = request_for(item)
            status = await _post(client, path, tokens[key], body, retries, key)
            report.statuses[f"{item.kind.value} {status}"] += 1
        except Exception as exc:
            failures.append(exc)
        finally:
            slots.release()

    def finished(task: asyncio.Task[None], child: str) -> None:
        running.discard(task)
        if tails.get(child) is task:
            del tails[child]

    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, transport=transport) as client:
        try:
            async for item in _paced(items, pace, progress):
                if failures:
                    break
                key = request_for(item)[1]
                if key not in tokens:
                    raise StreamError(f"the tokens file has no token for {key!r}")
                await slots.acquire()
                child = child_of(item)
                task = asyncio.create_task(send(client, item, tails.get(child)))
                running.add(task)
                tails[child] = task
                task.add_done_callback(functools.partial(finished, child=child))
            if running:
                await asyncio.wait(set(running))
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
    if failures:
        raise failures[0]
    return report


async def _post(
    client: httpx.AsyncClient, path: str, token: str, body: dict[str, Any], retries: int, holder: str
) -> int:
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    content = orjson.dumps(body)
    for attempt in range(retries + 1):
        try:
            response = await client.post(path, content=content, headers=headers)
        except httpx.TransportError as exc:
            if attempt == retries:
                raise StreamError(f"intake at {client.base_url} is unreachable: {exc!r}") from exc
        else:
            if response.status_code in (401, 403):
                raise StreamError(f"intake refused the token for {holder!r} ({response.status_code})")
            # A resend carries the same submission id, so intake can recognise it as the same submission.
            if (response.status_code != 429 and response.status_code < 500) or attempt == retries:
                return response.status_code
        await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
    raise AssertionError("unreachable")


async def produce_kafka(
    items: Iterable[Item],
    settings: KafkaSettings,
    *,
    pace: Pace | None = None,
    progress: PeriodProgress | None = None,
) -> StreamReport:
    """Produce the submissions to the hospital inbound topic, keyed by hospital; reservations are skipped
    (they are registry staff actions, made through intake's API only)."""
    report = StreamReport()
    topic = settings.topic(HOSPITAL_INBOUND)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="registry-generate",
        acks="all",
        enable_idempotence=True,  # a retried send is not written twice and the order per partition holds
        compression_type=settings.compression,
        linger_ms=5,
    )
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise StreamError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from exc
    try:
        pending: list[asyncio.Future[Any]] = []
        async for item in _paced(items, pace, progress):
            if item.kind is Kind.RESERVATION:
                report.skipped += 1
                continue
            hospital = item.hospital_id.encode()
            pending.append(
                await producer.send(
                    topic, orjson.dumps(item.payload), key=hospital, headers=[("hospital-id", hospital)]
                )
            )
            # Await acknowledgements in batches: the producer packs the sends in between into few requests.
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                report.statuses["submission acked"] += len(pending)
                pending.clear()
        await asyncio.gather(*pending)
        report.statuses["submission acked"] += len(pending)
    except KafkaError as exc:
        raise StreamError(f"producing to {topic} failed: {exc!r}") from exc
    finally:
        await producer.stop()
    return report
