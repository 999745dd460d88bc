"""The fault suite's harness: a platform to break, a steady load to break it under, a canary to time the
recovery, and a reconciliation that counts what was lost or done twice.

- `FaultPlatform` runs the four services as processes (`LocalPlatform`) on a topic prefix of their own and
  free ports, on SQLite or on the PostgreSQL databases it is given; it kills (SIGKILL) and restarts a
  service, and runs a second instance of a consumer service beside the first.
- `SteadyLoad` posts synthetic submissions and reservations (`deploy.synthetic`) at a steady rate, each
  child's requests one after another in their order. A request that gets no answer, a 5xx or a 429 is
  sent again (same body, same submission id) until it is answered, as a hospital's system would: the
  retries are how much of the load the platform did not hold at once.
- `Canary` sends one eligible diagnosis for a new child from a hospital the load never uses, at the moment
  a fault is injected, and times how long until it has gone all the way: accepted by intake, accepted by
  validation (its receipt), counted by stats and transferred to the Nordic sink. That is the time to
  recover.
- `reconcile` reads every topic from the beginning, the stats API, export's audit log and the Nordic
  sink, and compares them with what the hospitals were told (the 2xx answers): every accepted submission
  once in validation's output, in the stats counts and (when eligible) in the sink; each child's order
  kept; no reserved child in the sink.

Figures of each run go to `test-artifacts/fault/<scenario>.json`; `python -m tests.fault.report` renders
them into docs/fault-results.md.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from deploy.local.kafka import KafkaCluster, pick_free_ports
from deploy.local.platform import LocalPlatform, ServiceProcess
from deploy.ops.clients import admin_client, partitions_of, read_to_end
from deploy.ops.groups import describe_group
from deploy.ops.lag import consumer_lag
from deploy.ops.topics import describe_topics
from deploy.synthetic import GeneratorConfig, Item, Kind, generate
from deploy.synthetic.identity import synthetic_number
from deploy.synthetic.streaming import request_for
from services.export.domain.record import ExportIds, TransferRecord, build_records, content_sha256
from services.export.domain.sources import Source, record_key, replaces
from services.export.sinks.sql import RECORDS
from services.intake.crypto import registry_pseudonymiser
from shared.events import (
    DeadLetter,
    ReceiptIssued,
    ReservationRegistered,
    SubmissionReceived,
    SubmissionRejected,
    SubmissionValidated,
)
from shared.hospitals import BY_ID
from shared.kafka.codec import decoder_for
from shared.problems import PROBLEM_JSON
from shared.settings import KafkaSettings
from shared.topics import (
    DEAD_LETTERS,
    RECEIPTS,
    RESERVATIONS,
    SUBMISSIONS_RECEIVED,
    SUBMISSIONS_REJECTED,
    SUBMISSIONS_VALIDATED,
)
from tests.fixtures.forms import diagnosis_submission

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "fault"
PLATFORM_SERVICES = ("intake", "validation", "stats", "export")  # the four; not the dashboard beside them
CANARY_HOSPITAL = "unn"  # the load never uses it, so its figures count the canaries alone
LOAD_HOSPITALS = {"ous": 0.6, "haukeland": 0.25, "st-olav": 0.15}
RETRYABLE = frozenset({429, 500, 502, 503, 504})
# Faster than the defaults, so a run converges in seconds: export looks for waiting work twice a second.
FAST_ENV = {"EXPORT_POLL_INTERVAL_S": "0.5", "STATS_SNAPSHOT_INTERVAL_S": "0.5"}


def log(message: str) -> None:
    """Progress on stderr (pytest -s shows it): a fault run is long, and its timeline is the evidence."""
    sys.stderr.write(f"[fault {time.strftime('%H:%M:%S')}] {message}\n")


# --- the platform ------------------------------------------------------------------------------------


class FaultPlatform:
    """The four services as processes, on their own topic prefix and ports, ready to be broken."""

    def __init__(
        self,
        var: Path,
        bootstrap_servers: str,
        *,
        database_urls: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        ports = pick_free_ports(len(PLATFORM_SERVICES))
        env = dict(FAST_ENV)
        for name, url in (database_urls or {}).items():
            env[f"{name.upper()}_DATABASE_URL"] = url
        env.update(extra_env or {})
        self.platform = LocalPlatform(
            var,
            bootstrap_servers,
            services=tuple(ServiceProcess(name, port) for name, port in zip(PLATFORM_SERVICES, ports, strict=True)),
            topic_prefix=f"fault{uuid.uuid4().hex[:8]}.",
            extra_env=env,
        )
        self.var = var
        self.tokens = self.platform.demo_tokens()  # before the services start: they load the digests once
        keys = self.platform.secrets()
        self.pseudonym = registry_pseudonymiser(_key(keys["INTAKE_PSEUDONYM_KEY"]))
        self.export_ids = ExportIds(_key(keys["EXPORT_PSEUDONYM_KEY"]))
        self._seconds: dict[str, tuple[subprocess.Popen[bytes], int]] = {}

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.platform.bootstrap_servers, topic_prefix=self.platform.topic_prefix)

    @property
    def nordic_db(self) -> Path:
        return self.var / "nordic.db"

    def url(self, name: str) -> str:
        return self.platform.service(name).url

    def headers(self, holder: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[holder]}"}

    def start(self, timeout: float = 180.0, only: Sequence[str] = PLATFORM_SERVICES, ready: str = "/ready") -> None:
        """Start the services (`only` some of them) and wait until each answers `ready` with 200: `/ready`
        (broker and database reachable), or `/health` for a service meant to run without a broker."""
        services = [s for s in self.platform.services if s.name in only]
        for service in services:
            self.platform.start_service(service)
        deadline = time.monotonic() + timeout
        for service in services:
            while True:
                assert self.platform.pid(service) is not None, f"{service.name} exited; see {self.platform.log_dir}"
                try:
                    if httpx.get(f"{service.url}{ready}", timeout=2.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"{service.name} not ready after {timeout} s"
                time.sleep(0.3)

    def stop(self) -> None:
        for name in list(self._seconds):
            self.stop_second(name)
        self.platform.stop()

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed or committed."""
        service = self.platform.service(name)
        pid = self.platform.pid(service)
        assert pid is not None, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.platform.pid(service) is not None:
            assert time.monotonic() < deadline, f"{name} survived SIGKILL"
            time.sleep(0.05)

    def pause(self, name: str) -> None:
        os.kill(self._pid(name), signal.SIGSTOP)

    def resume(self, name: str) -> None:
        os.kill(self._pid(name), signal.SIGCONT)

    def restart(self, name: str, timeout: float = 120.0) -> None:
        service = self.platform.service(name)
        self.platform.start_service(service)
        self.platform.wait_ready(service, timeout=timeout)

    def start_second(self, name: str, timeout: float = 120.0) -> None:
        """Another process of a consumer service: same environment and database, its own HTTP port. It joins
        the service's consumer group, which rebalances the partitions between the two."""
        [port] = pick_free_ports(1)
        second = ServiceProcess(name, port)
        with open(self.platform.log_dir / f"{name}-2.log", "ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                env=self.platform.environment(second),
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._seconds[name] = (process, port)
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, f"the second {name} exited; see {self.platform.log_dir}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the second {name} not ready after {timeout} s"
            time.sleep(0.3)

    def stop_second(self, name: str, timeout: float = 45.0) -> None:
        """SIGTERM: the second instance finishes its batch, commits and leaves the group."""
        process, _ = self._seconds.pop(name)
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            raise AssertionError(f"the second {name} did not leave within {timeout} s") from None

    def _pid(self, name: str) -> int:
        pid = self.platform.pid(self.platform.service(name))
        assert pid is not None, f"{name} is not running"
        return pid

    async def kill_mid_batch(self, name: str, backlog: int = 60) -> str:
        """SIGKILL a consumer service in the middle of a batch, and say how the moment was caught.

        The service is paused (SIGSTOP) until `backlog` records wait for it, then resumed; it fetches them
        as one batch. Validation is killed the instant the first output of that batch reaches the broker
        (a consumer of the output topics, long-polling with a 1 ms wait, sees it): after publishing, before
        its commit. Stats and export, whose batch writes only their database, are killed 50 ms into it.
        The evidence that the kill landed inside the batch: offsets of the waiting records were still
        uncommitted when the process died, so the restarted service gets them again."""
        self.pause(name)
        try:
            await self._wait_backlog(name, backlog, within=10.0)
            [before] = await consumer_lag(self.kafka, [name])
            waiting = before.total
            if name != "validation":
                self.resume(name)
                await asyncio.sleep(0.05)
                self.kill(name)
                how = "killed 50 ms into the batch"
            else:
                how = await self._kill_at_first_output(name)
        except BaseException:
            if self.platform.pid(self.platform.service(name)) is not None:
                self.resume(name)
            raise
        [after] = await consumer_lag(self.kafka, [name])
        committed = {(p.topic, p.partition): p.committed or p.start for p in after.partitions}
        uncommitted = sum(max(0, p.end - committed.get((p.topic, p.partition), p.end)) for p in before.partitions)
        return f"{how}: {uncommitted} of {waiting} waiting records still uncommitted at the kill"

    async def _kill_at_first_output(self, name: str) -> str:
        outputs = [self.kafka.topic(SUBMISSIONS_VALIDATED), self.kafka.topic(SUBMISSIONS_REJECTED)]
        partitions = await partitions_of(self.kafka, outputs)
        watcher = AIOKafkaConsumer(
            bootstrap_servers=self.kafka.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=1
        )
        await watcher.start()
        try:
            watcher.assign(partitions)
            await watcher.seek_to_end(*partitions)
            for tp in partitions:
                await watcher.position(tp)  # resolve the end now, not after the resume
            self.resume(name)
            seen = await watcher.getmany(*partitions, timeout_ms=10_000, max_records=1)
            self.kill(name)
        finally:
            await watcher.stop()
        return "killed as the batch's first output reached the broker" if seen else "killed; no output seen in 10 s"

    async def group_members(self, group: str) -> int:
        async with admin_client(self.kafka) as admin:
            return len((await describe_group(admin, group)).members)

    async def _wait_backlog(self, name: str, at_least: int, within: float) -> int:
        deadline = time.monotonic() + within
        while True:
            [lag] = await consumer_lag(self.kafka, [name])
            if lag.total >= at_least or time.monotonic() > deadline:
                return lag.total
            await asyncio.sleep(0.2)


def _key(value: str) -> bytes:
    return base64.urlsafe_b64decode(value.encode() + b"==")


# --- the load ----------------------------------------------------------------------------------------


def synthetic_items(count: int, seed: int) -> list[Item]:
    """About `count` realistic items (submissions, some erroneous, corrections, reservations) of 2021-2023
    from three hospitals, in the order the hospitals made them."""
    config = GeneratorConfig(
        seed=seed,
        start_year=2021,
        years=3,
        cases_per_year=count / 10,
        hospital_shares=LOAD_HOSPITALS,
        reservation_share=0.1,
    )
    return list(generate(config))[:count]


@dataclass
class Sent:
    """One request of the load and what became of it."""

    index: int
    kind: str
    hospital_id: str
    national_id: str
    submission_id: str | None
    form_type: str | None
    status: int | None = None  # the final answer; None: never answered
    retries: int = 0  # sends that got no answer, a 5xx or a 429
    retried_on: list[str] = field(default_factory=list)  # why each retry: a status, or "no answer"
    first_sent: float = 0.0  # time.monotonic()
    answered: float = 0.0

    @property
    def accepted(self) -> bool:
        return self.kind == Kind.SUBMISSION.value and self.status in (200, 202)


class SteadyLoad:
    """Posts `items` at `rate` per second; each child's requests one at a time, in order."""

    def __init__(
        self,
        items: Sequence[Item],
        base_url: str,
        tokens: Mapping[str, str],
        rate: float,
        *,
        concurrency: int = 48,
        give_up_after: float = 300.0,
    ) -> None:
        self.items = list(items)
        self.base_url = base_url
        self.tokens = tokens
        self.rate = rate
        self.concurrency = concurrency
        self.give_up_after = give_up_after
        self.sent: list[Sent] = []
        self.started = 0.0
        self.finished = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.not_problems: Counter[str] = Counter()  # error answers that were not problem documents

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="steady-load")

    def stop(self) -> None:
        """Send nothing new (requests under way are still answered): the load ends with the faults."""
        self._stopping = True

    async def wait(self) -> None:
        assert self._task is not None
        await self._task

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    async def run(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        tails: dict[str, asyncio.Task[None]] = {}
        tasks: list[asyncio.Task[None]] = []
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=20.0, limits=limits) as client:
            self.started = time.monotonic()
            for index, item in enumerate(self.items):
                if self._stopping:
                    break
                delay = self.started + index / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                path, holder, body = request_for(item)
                national_id = str(body.get("national_id") or item.payload.get("patient", {}).get("national_id"))
                sent = Sent(
                    index,
                    item.kind.value,
                    item.hospital_id,
                    national_id,
                    item.payload.get("submission_id"),
                    item.payload.get("form", {}).get("form_type"),
                )
                self.sent.append(sent)
                before = tails.get(national_id)
                task = asyncio.create_task(self._send(client, slots, sent, path, holder, body, before))
                tails[national_id] = task
                tasks.append(task)
            await asyncio.gather(*tasks)
        self.finished = time.monotonic()

    async def _send(
        self,
        client: httpx.AsyncClient,
        slots: asyncio.Semaphore,
        sent: Sent,
        path: str,
        holder: str,
        body: dict[str, Any],
        before: asyncio.Task[None] | None,
    ) -> None:
        if before is not None:
            await asyncio.wait([before])  # the child's previous request is answered first: per-child order
        content = orjson.dumps(body)
        headers = {"authorization": f"Bearer {self.tokens[holder]}", "content-type": "application/json"}
        async with slots:
            sent.first_sent = time.monotonic()
            deadline = sent.first_sent + self.give_up_after
            backoff = 0.2
            while True:
                try:
                    response = await client.post(path, content=content, headers=headers)
                except httpx.TransportError:
                    status = None
                else:
                    status = response.status_code
                    assert status not in (401, 403), f"intake refused the token for {holder}: {response.text}"
                    if status >= 400 and not response.headers.get("content-type", "").startswith(PROBLEM_JSON):
                        self.not_problems[str(status)] += 1
                if status is not None and status not in RETRYABLE:
                    sent.status = status
                    sent.answered = time.monotonic()
                    return
                sent.retries += 1
                sent.retried_on.append("no answer" if status is None else str(status))
                if time.monotonic() > deadline:
                    return  # never answered: reported, and fails the run
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    # -- figures ----------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        submissions = [s for s in self.sent if s.kind == Kind.SUBMISSION.value]
        statuses = Counter(str(s.status) for s in self.sent)
        elapsed = (self.finished or time.monotonic()) - self.started
        return {
            "items": len(self.sent),
            "submissions": len(submissions),
            "reservations": len(self.sent) - len(submissions),
            "accepted": sum(s.accepted for s in submissions),
            "statuses": dict(sorted(statuses.items())),
            "unanswered": sum(s.status is None for s in self.sent),
            "retried_requests": sum(s.retries > 0 for s in self.sent),
            "retries": sum(s.retries for s in self.sent),
            "retried_on": dict(sorted(Counter(why for s in self.sent for why in s.retried_on).items())),
            "errors_not_problem_documents": dict(self.not_problems),
            "offered_rate": self.rate,
            "held_rate": round(len(self.sent) / elapsed, 1) if elapsed > 0 else None,
            "seconds": round(elapsed, 1),
        }


# --- the canary --------------------------------------------------------------------------------------


@dataclass
class CanaryResult:
    label: str
    submission_id: str
    national_id: str
    seconds: float  # from the fault's injection until the canary went all the way


class Canary:
    """One eligible diagnosis at a time for a new child from `CANARY_HOSPITAL`, timed end to end."""

    def __init__(self, platform: FaultPlatform) -> None:
        self.platform = platform
        self.results: list[CanaryResult] = []
        self._individual = 600

    def _body(self) -> tuple[dict[str, Any], str]:
        while True:
            self._individual += 2
            national_id = synthetic_number(date(2014, 2, 3), male=False, individual=self._individual)
            if national_id is not None:
                break
        body = diagnosis_submission(
            CANARY_HOSPITAL,
            national_id,
            f"CANARY-{len(self.results) + 1}",
            diagnosed=date.today() - timedelta(days=30),
            laterality="not_paired",
        )
        return body, national_id

    async def through(self, label: str, within: float = 240.0) -> CanaryResult:
        """Send a canary now and wait until intake, validation, stats and export have all done their part."""
        started = time.monotonic()
        deadline = started + within
        body, national_id = self._body()
        submission_id = body["submission_id"]
        expected_count = len(self.results) + 1
        record_id = self.platform.export_ids.record(
            f"{self.platform.pseudonym(national_id)}/{CANARY_HOSPITAL}/{body['form']['tumour_ref']}/diagnosis"
        )
        hospital = self.platform.headers(CANARY_HOSPITAL)
        intake, stats = self.platform.url("intake"), self.platform.url("stats")
        async with httpx.AsyncClient(timeout=10.0) as client:
            stage = "intake"
            while True:
                assert time.monotonic() < deadline, f"canary {label!r} stuck at {stage} after {within} s"
                try:
                    if stage == "intake":
                        answer = await client.post(f"{intake}/v1/submissions", json=body, headers=hospital)
                        if answer.status_code in (200, 202):
                            stage = "validation"
                            continue
                        assert answer.status_code in RETRYABLE, answer.text
                    elif stage == "validation":
                        answer = await client.get(f"{intake}/v1/receipts/{submission_id}", headers=hospital)
                        if answer.status_code == 200 and answer.json()["status"] != "received":
                            assert answer.json()["status"] == "accepted", answer.text
                            stage = "stats"
                            continue
                    elif stage == "stats":
                        answer = await client.get(f"{stats}/stats/{CANARY_HOSPITAL}", headers=hospital)
                        if answer.status_code == 200:
                            counts = answer.json()["total"]["submissions"].get("diagnosis", {})
                            if counts.get("accepted", 0) >= expected_count:
                                stage = "export"
                                continue
                    elif await asyncio.to_thread(_sink_has, self.platform.nordic_db, record_id):
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.25)
        result = CanaryResult(label, submission_id, national_id, round(time.monotonic() - started, 1))
        self.results.append(result)
        log(f"canary {label!r} through in {result.seconds} s")
        return result


def _sink_has(path: Path, record_id: str) -> bool:
    rows = sink_rows(path)
    return record_id in rows


def sink_rows(path: Path) -> dict[str, dict[str, Any]]:
    """The Nordic SQL sink's rows by record id (read-only: the export keeps writing)."""
    if not path.exists():
        return {}
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        connection.row_factory = sqlite3.Row
        exists = connection.execute(
            "select 1 from sqlite_master where type = 'table' and name = ?", (RECORDS.name,)
        ).fetchone()
        if not exists:
            return {}
        return {row["record_id"]: dict(row) for row in connection.execute(f"select * from {RECORDS.name}")}
    finally:
        connection.close()


# --- reconciliation ----------------------------------------------------------------------------------


@dataclass
class Reconciliation:
    """What the platform holds, against what the hospitals were told. Lists hold submission ids (or record
    ids for the sink) so a failure names what went wrong."""

    sent: int = 0  # submissions sent (load and canaries)
    accepted: int = 0  # answered 2xx
    refused: int = 0  # answered 4xx: never registered
    unanswered: int = 0
    validated: int = 0
    rejected: int = 0
    # Validation's output: every accepted submission exactly once.
    lost_in_validation: list[str] = field(default_factory=list)
    duplicated_in_intake: list[str] = field(default_factory=list)  # two received events for one submission
    duplicated_in_validation: list[str] = field(default_factory=list)  # two outcomes for one submission
    not_accepted_but_published: list[str] = field(default_factory=list)
    raw_duplicates: dict[str, int] = field(default_factory=dict)  # the same event id again, per topic
    # Stats: per hospital and form type, received / accepted / rejected equal what happened.
    stats_lost: int = 0
    stats_duplicated: int = 0
    stats_mismatches: list[str] = field(default_factory=list)
    # The Nordic sink: exactly the eligible records, each in its latest version, no reserved child.
    sink_expected: int = 0
    sink_rows: int = 0
    sink_missing: list[str] = field(default_factory=list)
    sink_unexpected: list[str] = field(default_factory=list)
    sink_stale: list[str] = field(default_factory=list)
    reserved_children: int = 0
    reserved_with_records: int = 0  # reserved children who would have records in the sink otherwise
    reserved_in_sink: list[str] = field(default_factory=list)
    audit_duplicates: int = 0  # ledger operations the sink confirmed more than once
    export_waiting: int = 0
    # Per child: one partition, and the order the hospital sent in, on every topic.
    order_violations: list[str] = field(default_factory=list)
    dead_letters: int = 0

    @property
    def lost(self) -> int:
        return len(self.lost_in_validation) + self.stats_lost + len(self.sink_missing)

    @property
    def duplicated(self) -> int:
        return (
            len(self.duplicated_in_intake)
            + len(self.duplicated_in_validation)
            + self.stats_duplicated
            + self.audit_duplicates
        )

    @property
    def converged(self) -> bool:
        return (
            self.lost == 0
            and not self.stats_mismatches
            and not self.sink_unexpected
            and not self.sink_stale
            and self.export_waiting == 0
        )

    def figures(self) -> dict[str, Any]:
        figures = asdict(self)
        for name, value in figures.items():
            if isinstance(value, list):
                figures[name] = {"count": len(value), "first": value[:5]}
        figures["lost"] = self.lost
        figures["duplicated"] = self.duplicated
        figures["raw_duplicates_total"] = sum(self.raw_duplicates.values())
        return figures

    def assert_guarantees(self) -> None:
        """Nothing lost, nothing twice, order kept, no reserved child in the sink, nothing dead-lettered."""
        problems = [
            f"{name}: {value}"
            for name, value in (
                ("unanswered requests", self.unanswered),
                ("lost in validation", self.lost_in_validation[:10]),
                ("registered twice by intake", self.duplicated_in_intake[:10]),
                ("two outcomes", self.duplicated_in_validation[:10]),
                ("published though never accepted", self.not_accepted_but_published[:10]),
                ("stats", self.stats_mismatches[:10]),
                ("missing from the sink", self.sink_missing[:10]),
                ("in the sink though not eligible", self.sink_unexpected[:10]),
                ("stale in the sink", self.sink_stale[:10]),
                ("reserved children in the sink", self.reserved_in_sink[:10]),
                ("audit duplicates", self.audit_duplicates),
                ("export operations still waiting", self.export_waiting),
                ("order", self.order_violations[:10]),
                ("dead letters", self.dead_letters),
            )
            if value
        ]
        assert not problems, "guarantees broken:\n  " + "\n  ".join(problems)


def _decode_all(records: Iterable[ConsumerRecord[bytes, bytes]], decoder: Callable[[bytes], Any]) -> list[Any]:
    return [(record, decoder(record.value)) for record in records]


async def reconcile(platform: FaultPlatform, load: SteadyLoad | None, canary: Canary | None = None) -> Reconciliation:
    """Compare everything the platform holds now with what the hospitals were answered."""
    result = Reconciliation()
    kafka = platform.kafka
    topics = {
        spec.name: kafka.topic(spec)
        for spec in (
            SUBMISSIONS_RECEIVED,
            SUBMISSIONS_VALIDATED,
            SUBMISSIONS_REJECTED,
            RECEIPTS,
            RESERVATIONS,
            DEAD_LETTERS,
        )
    }
    records = await read_to_end(kafka, topics.values())
    by_topic: dict[str, list[ConsumerRecord[bytes, bytes]]] = defaultdict(list)
    for record in records:  # topic, partition, offset order
        by_topic[record.topic].append(record)

    # What the hospitals were told.
    sent: list[Sent] = [s for s in (load.sent if load else []) if s.kind == Kind.SUBMISSION.value]
    canaries = canary.results if canary else []
    accepted: dict[str, tuple[str, str, str]] = {  # submission id -> (hospital, national id, form type)
        s.submission_id: (s.hospital_id, s.national_id, s.form_type or "")
        for s in sent
        if s.accepted and s.submission_id
    }
    for c in canaries:
        accepted[c.submission_id] = (CANARY_HOSPITAL, c.national_id, "diagnosis")
    result.sent = len(sent) + len(canaries)
    result.accepted = len(accepted)
    result.refused = sum(s.status is not None and 400 <= s.status < 500 for s in sent)
    result.unanswered = sum(s.status is None for s in (load.sent if load else []))

    # Every event once by its id; the same id again is a redelivery the consumers drop (counted apart).
    def distinct(spec_name: str, decoder: Callable[[bytes], Any]) -> list[tuple[ConsumerRecord[bytes, bytes], Any]]:
        seen: set[uuid.UUID] = set()
        unique = []
        raw = 0
        for record, event in _decode_all(by_topic[topics[spec_name]], decoder):
            if event.event_id in seen:
                raw += 1
                continue
            seen.add(event.event_id)
            unique.append((record, event))
        result.raw_duplicates[spec_name] = raw
        return unique

    received = distinct(SUBMISSIONS_RECEIVED.name, SubmissionReceived.from_json)
    validated = distinct(SUBMISSIONS_VALIDATED.name, SubmissionValidated.from_json)
    rejected = distinct(SUBMISSIONS_REJECTED.name, SubmissionRejected.from_json)
    receipts = distinct(RECEIPTS.name, ReceiptIssued.from_json)
    reservations = distinct(RESERVATIONS.name, decoder_for(RESERVATIONS))
    result.dead_letters = len(_decode_all(by_topic[topics[DEAD_LETTERS.name]], DeadLetter.from_json))

    received_ids = Counter(str(e.submission_id) for _, e in received)
    result.duplicated_in_intake = sorted(sid for sid, n in received_ids.items() if n > 1)
    result.not_accepted_but_published = sorted(set(received_ids) - set(accepted))
    outcomes = Counter(str(e.submission_id) for _, e in [*validated, *rejected])
    result.validated = len({str(e.submission_id) for _, e in validated})
    result.rejected = len({str(e.submission_id) for _, e in rejected})
    result.lost_in_validation = sorted(set(accepted) - set(outcomes))
    result.duplicated_in_validation = sorted(sid for sid, n in outcomes.items() if n > 1)

    _check_order(platform, result, sent, received, validated, rejected)
    await _check_stats(platform, result, accepted, validated, rejected, receipts)
    await _check_export(platform, result, validated, reservations)
    return result


def _check_order(
    platform: FaultPlatform,
    result: Reconciliation,
    sent: Sequence[Sent],
    received: Sequence[tuple[ConsumerRecord[bytes, bytes], SubmissionReceived]],
    validated: Sequence[tuple[ConsumerRecord[bytes, bytes], SubmissionValidated]],
    rejected: Sequence[tuple[ConsumerRecord[bytes, bytes], SubmissionRejected]],
) -> None:
    """Per child: all events in one partition keyed by its pseudonym, in the order the hospital sent them."""
    hospital_order: dict[str, list[str]] = defaultdict(list)
    for s in sorted(sent, key=lambda s: s.index):  # a child's requests were sent one after another
        if s.accepted and s.submission_id:
            hospital_order[platform.pseudonym(s.national_id)].append(s.submission_id)

    def per_child(events: Sequence[tuple[ConsumerRecord[bytes, bytes], Any]], topic: str) -> dict[str, list[str]]:
        order: dict[str, list[str]] = defaultdict(list)
        partitions: dict[str, set[int]] = defaultdict(set)
        for record, event in events:  # partition and offset order; a child has one partition
            pseudonym = event.child.pseudonym
            partitions[pseudonym].add(record.partition)
            if record.key != pseudonym.encode():
                result.order_violations.append(f"{topic}: {event.submission_id} keyed {record.key!r}")
            order[pseudonym].append(str(event.submission_id))
        split = [sorted(p) for p in partitions.values() if len(p) > 1]
        result.order_violations += [f"{topic}: a child in partitions {p}" for p in split]
        return order

    on_received = per_child(received, "received")
    for pseudonym, expected in hospital_order.items():
        if on_received.get(pseudonym, []) != expected:
            result.order_violations.append(f"received: {on_received.get(pseudonym)} != sent {expected}")
    for topic, events in (("validated", validated), ("rejected", rejected)):
        for pseudonym, order in per_child(events, topic).items():
            wanted = [sid for sid in on_received.get(pseudonym, []) if sid in set(order)]
            if order != wanted:
                result.order_violations.append(f"{topic}: {order} != received order {wanted}")


async def _check_stats(
    platform: FaultPlatform,
    result: Reconciliation,
    accepted: Mapping[str, tuple[str, str, str]],
    validated: Sequence[tuple[ConsumerRecord[bytes, bytes], SubmissionValidated]],
    rejected: Sequence[tuple[ConsumerRecord[bytes, bytes], SubmissionRejected]],
    receipts: Sequence[tuple[ConsumerRecord[bytes, bytes], ReceiptIssued]],
) -> None:
    """Stats' counts per hospital and form type equal what intake accepted and validation decided."""
    expected: dict[tuple[str, str, str], int] = Counter()
    for hospital, _, form_type in accepted.values():
        expected[hospital, form_type, "received"] += 1
    for metric, events in (("accepted", validated), ("rejected", rejected)):
        for sid in {(e.hospital_id, e.form.form_type, str(e.submission_id)) for _, e in events}:
            expected[sid[0], sid[1], metric] += 1
    del receipts  # stats counts "received" from receipts; the expectation is what intake answered
    async with httpx.AsyncClient(timeout=30.0) as client:
        for hospital in BY_ID:
            answer = await client.get(f"{platform.url('stats')}/stats/{hospital}", headers=platform.headers("staff"))
            answer.raise_for_status()
            counts = answer.json()["total"]["submissions"]
            for form_type in ("diagnosis", "treatment", "follow_up"):
                for metric in ("received", "accepted", "rejected"):
                    want = expected.get((hospital, form_type, metric), 0)
                    have = counts.get(form_type, {}).get(metric, 0)
                    if have != want:
                        result.stats_mismatches.append(f"{hospital} {form_type} {metric}: {have} != {want}")
                        result.stats_lost += max(0, want - have)
                        result.stats_duplicated += max(0, have - want)


async def _check_export(
    platform: FaultPlatform,
    result: Reconciliation,
    validated: Sequence[tuple[ConsumerRecord[bytes, bytes], SubmissionValidated]],
    reservations: Sequence[tuple[ConsumerRecord[bytes, bytes], Any]],
) -> None:
    """The sink holds exactly the eligible records of children not reserved, each in its latest version."""
    current: dict[str, SubmissionValidated] = {}
    for _, event in validated:
        key = record_key(event)
        if replaces(current[key].received_at if key in current else None, event):
            current[key] = event
    reserved: dict[str, bool] = {}
    for _, event in reservations:  # offset order per child: the latest event is the child's state
        reserved[event.child_pseudonym] = isinstance(event, ReservationRegistered)
    reserved_children = {p for p, r in reserved.items() if r}
    result.reserved_children = len(reserved_children)

    sources: dict[str, list[Source]] = defaultdict(list)
    for key, event in current.items():
        sources[event.child.pseudonym].append(Source(key, event))
    expected: dict[str, TransferRecord] = {}
    for pseudonym, child_sources in sources.items():
        records = build_records(child_sources, platform.export_ids).records
        if pseudonym not in reserved_children:
            expected.update(records)
        elif records:
            result.reserved_with_records += 1

    rows = await asyncio.to_thread(sink_rows, platform.nordic_db)
    result.sink_expected = len(expected)
    result.sink_rows = len(rows)
    result.sink_missing = sorted(set(expected) - set(rows))
    result.sink_unexpected = sorted(set(rows) - set(expected))
    result.sink_stale = sorted(
        rid
        for rid, row in rows.items()
        if rid in expected
        and content_sha256(TransferRecord.model_validate_json(row["record"])) != content_sha256(expected[rid])
    )
    reserved_ids = {platform.export_ids.child(p) for p in reserved_children}
    result.reserved_in_sink = sorted(rid for rid, row in rows.items() if row["child_id"] in reserved_ids)

    staff = platform.headers("staff")
    async with httpx.AsyncClient(base_url=platform.url("export"), timeout=30.0) as client:
        status = (await client.get("/export/status", headers=staff)).raise_for_status().json()
        result.export_waiting = status["pending"] + status["failed"]
        confirmed: Counter[int] = Counter()
        after = 0
        while True:
            page = (
                (await client.get("/export/audit", params={"after": after, "limit": 1000}, headers=staff))
                .raise_for_status()
                .json()
            )
            confirmed.update(entry["ledger_id"] for entry in page["entries"])
            if page["next_after"] is None:
                break
            after = page["next_after"]
        result.audit_duplicates = sum(n - 1 for n in confirmed.values() if n > 1)


async def converge(
    platform: FaultPlatform, load: SteadyLoad | None, canary: Canary | None = None, within: float = 180.0
) -> tuple[Reconciliation, float]:
    """Reconcile until everything accepted has arrived everywhere (or `within` passed); return the last
    reconciliation and how long it took to get there."""
    started = time.monotonic()
    while True:
        result = await reconcile(platform, load, canary)
        if result.converged or time.monotonic() - started > within:
            return result, round(time.monotonic() - started, 1)
        await asyncio.sleep(2.0)


# --- a fault run ---------------------------------------------------------------------------------------


@dataclass
class FaultEvent:
    """One injected fault: what, when (seconds into the load), and the canary's time to recover."""

    fault: str
    at_s: float
    outage_s: float  # how long the broken part was down (until restarted / back)
    recover_s: float  # from the injection until the canary went all the way through
    note: str = ""  # how the fault was injected, e.g. where in a batch the kill landed


@dataclass
class FaultRun:
    scenario: str
    title: str
    platform: FaultPlatform
    load: SteadyLoad
    canary: Canary
    events: list[FaultEvent] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def at(self) -> float:
        return round(time.monotonic() - self.load.started, 1)

    async def inject(
        self,
        fault: str,
        breaks: Callable[[], Awaitable[str | None]],
        repairs: Callable[[], Awaitable[None]],
        down_s: float,
    ) -> FaultEvent:
        """Break something, keep it broken `down_s` seconds while the load goes on, repair it, and time the
        canary (sent at the moment of the injection) until it has gone all the way through."""
        at = self.at()
        log(f"{self.scenario}: {fault} at {at} s into the load")
        note = await breaks() or ""  # returns once the fault is in effect
        injected = time.monotonic()
        if note:
            log(f"{self.scenario}: {note}")
        canary = asyncio.create_task(self.canary.through(fault))
        await asyncio.sleep(down_s)
        await repairs()
        outage = round(time.monotonic() - injected, 1)
        log(f"{self.scenario}: repaired after {outage} s")
        result = await canary
        event = FaultEvent(fault, at, outage, result.seconds, note)
        self.events.append(event)
        return event

    async def finish(self, within: float = 180.0, tail_s: float = 3.0) -> Reconciliation:
        """Keep the load on `tail_s` more seconds after the last fault, stop it and wait for its answers,
        converge, record the figures, then assert the guarantees."""
        await asyncio.sleep(tail_s)
        self.load.stop()
        await self.load.wait()
        log(f"{self.scenario}: load done {self.load.summary()}")
        assert not self.load.not_problems, f"error answers that are not problem documents: {self.load.not_problems}"
        reconciliation, converge_s = await converge(self.platform, self.load, self.canary, within)
        record_run(self, reconciliation, converge_s)
        log(f"{self.scenario}: lost {reconciliation.lost}, duplicated {reconciliation.duplicated}")
        reconciliation.assert_guarantees()
        return reconciliation


def record_run(run: FaultRun, reconciliation: Reconciliation, converge_s: float) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{run.scenario}.json"
    figures = {
        "scenario": run.scenario,
        "title": run.title,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load": run.load.summary(),
        "faults": [asdict(e) for e in run.events],
        "converged_after_load_s": converge_s,
        "total_s": round(time.monotonic() - run.started, 1),
        "reconciliation": reconciliation.figures(),
    }
    path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return path


# --- brokers -------------------------------------------------------------------------------------------

_RAFT_TRANSITION = re.compile(r"\[RaftManager id=(\d+)\] Completed transition to (Leader|FollowerState)\((.*)")


def active_controller(cluster: KafkaCluster) -> int:
    """The node leading the KRaft controller quorum now, from the nodes' own logs: the latest (highest
    epoch) leader any live node has seen itself become or follow."""
    latest = (-1, -1)
    for node in cluster.status():
        if not node.alive:
            continue
        for line in node.log_file.read_text(errors="replace").splitlines():
            if (found := _RAFT_TRANSITION.search(line)) is None:
                continue
            me, state, rest = found.groups()
            epoch = re.search(r"epoch=(\d+)", rest)
            leader = me if state == "Leader" else (re.search(r"leader=(\d+)", rest) or [None, None])[1]
            if epoch and leader is not None:
                latest = max(latest, (int(epoch[1]), int(leader)))
    assert latest[1] >= 0, "no live node has seen a controller leader"
    return latest[1]


async def partition_leaders(kafka: KafkaSettings) -> Counter[int]:
    """How many partitions of the platform's topics each broker leads."""
    return Counter(p.leader for d in await describe_topics(kafka) if d.exists for p in d.partitions)


async def wait_fully_replicated(kafka: KafkaSettings, within: float = 120.0) -> float:
    """Wait until every partition of the platform's topics has its whole replica set in sync again."""
    started = time.monotonic()
    while True:
        try:
            descriptions = await describe_topics(kafka)
            if all(
                d.exists and not any(p.under_replicated or p.leader < 0 for p in d.partitions) for d in descriptions
            ):
                return round(time.monotonic() - started, 1)
        except Exception:  # a broker coming back may refuse a request or two
            pass
        assert time.monotonic() - started < within, f"partitions still under-replicated after {within} s"
        await asyncio.sleep(0.5)


async def settle(platform: FaultPlatform, within: float = 180.0) -> dict[str, int]:
    """Wait until whatever reached the platform has gone everywhere it goes, however it came in (API or the
    inbound topic): every received submission decided, counted by stats, and export with nothing waiting.
    Return the counts it settled on."""
    kafka = platform.kafka
    deadline = time.monotonic() + within
    while True:
        records = await read_to_end(
            kafka, [kafka.topic(s) for s in (SUBMISSIONS_RECEIVED, SUBMISSIONS_VALIDATED, SUBMISSIONS_REJECTED)]
        )
        received = {SubmissionReceived.from_json(r.value).submission_id for r in records if "received" in r.topic}
        decided = {
            orjson.loads(r.value)["submission_id"] for r in records if "received" not in r.topic
        }  # validated or rejected
        async with httpx.AsyncClient(timeout=30.0) as client:
            staff = platform.headers("staff")
            registry = (await client.get(f"{platform.url('stats')}/stats/registry", headers=staff)).json()
            export = (await client.get(f"{platform.url('export')}/export/status", headers=staff)).json()
        counted = sum(c.get("received", 0) for c in registry["total"]["submissions"].values())
        lag = sum(g.total for g in await consumer_lag(kafka, ["intake", "intake-inbound", *PLATFORM_SERVICES[1:]]))
        figures = {"received": len(received), "decided": len(decided), "counted": counted, "lag": lag, **export}
        if len(received) == len(decided) == counted and lag == 0 and export["pending"] == 0:
            return figures
        assert time.monotonic() < deadline, f"the platform did not settle within {within} s: {figures}"
        await asyncio.sleep(1.0)
