"""Faults under a steady load, each followed by a full reconciliation.

Each test runs the four services as processes on a real broker (and, where it says so, on a real
PostgreSQL), streams synthetic submissions at a steady rate, breaks something in the middle, repairs it,
and then proves the guarantees: every submission a hospital got a 2xx for appears exactly once in
validation's output, in the stats counts and (when eligible) in the Nordic sink; each child's order is
kept; no reserved child is in the sink; nothing is dead-lettered for an infrastructure failure. The
figures of every run go to test-artifacts/fault/ and, through `python -m tests.fault.report`, to
docs/fault-results.md.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.kafka import KafkaCluster
from deploy.local.postgres import LocalPostgres, ensure_installed
from services.export.settings import ExportSettings
from services.stats.settings import StatsSettings
from tests.fault.harness import (
    PLATFORM_SERVICES,
    Canary,
    FaultPlatform,
    FaultRun,
    SteadyLoad,
    active_controller,
    log,
    partition_leaders,
    synthetic_items,
    wait_fully_replicated,
)
from tests.fixtures.infra import DatabaseServer

# Members of its consumer group each process of these starts by default.
STATS_CONSUMERS = StatsSettings.model_fields["consumers"].default
EXPORT_CONSUMERS = ExportSettings.model_fields["consumers"].default

pytestmark = [pytest.mark.fault, pytest.mark.kafka, pytest.mark.slow, pytest.mark.e2e]


RATE = 12.0  # submissions per second: steady, and modest on a shared 2-core machine
LEAD_S = 4.0  # load before the first fault
ITEMS = 1500  # more than any run sends: the load stops a few seconds after the last fault


def _run(scenario: str, title: str, platform: FaultPlatform, seed: int) -> FaultRun:
    load = SteadyLoad(synthetic_items(ITEMS, seed), platform.url("intake"), platform.tokens, RATE)
    return FaultRun(scenario, title, platform, load, Canary(platform))


async def _started(platform: FaultPlatform) -> None:
    await asyncio.to_thread(platform.start)
    log(f"platform up on {platform.kafka.bootstrap_servers} prefix {platform.kafka.topic_prefix}")


async def test_kill_9_each_service_in_turn_mid_batch(kafka_bootstrap: str, tmp_path: Path) -> None:
    """SIGKILL intake while requests are in flight and its outbox relays; SIGKILL each consumer service
    while it works through a backlog (paused a moment so a batch is surely in progress); restart each."""
    platform = FaultPlatform(tmp_path, kafka_bootstrap)
    await _started(platform)
    try:
        run = _run("kill-9", "kill -9 each service in turn, mid-batch, and restart it", platform, seed=11)
        run.load.start()
        await asyncio.sleep(LEAD_S)
        for name in ("intake", "validation", "stats", "export"):

            async def breaks(name: str = name) -> str:
                if name == "intake":
                    platform.kill(name)  # requests in flight, the outbox relaying
                    return "killed with requests in flight"
                return await platform.kill_mid_batch(name)

            async def repairs(name: str = name) -> None:
                await asyncio.to_thread(platform.restart, name)

            await run.inject(f"kill -9 {name}", breaks, repairs, down_s=1.0)
        await run.finish()
    finally:
        await asyncio.to_thread(platform.stop)


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """A single broker of this test's own, to stop and start without disturbing the session's."""
    cluster = KafkaCluster("fault-1", 1, state_dir=tmp_path_factory.mktemp("kafka-own"), free_ports=True)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


async def test_single_broker_stopped_and_restarted(own_broker: KafkaCluster, tmp_path: Path) -> None:
    """The only broker stops for a while: intake keeps answering 202 (the outbox holds the submissions),
    consumers wait without dead-lettering, and everything drains when the broker is back."""
    platform = FaultPlatform(tmp_path, own_broker.bootstrap_servers)
    await _started(platform)
    try:
        run = _run("broker-restart", "stop and restart the single broker", platform, seed=12)
        run.load.start()
        await asyncio.sleep(LEAD_S)

        async def breaks() -> str:
            await asyncio.to_thread(own_broker.stop)
            return "broker stopped (SIGTERM, clean shutdown)"

        async def repairs() -> None:
            await asyncio.to_thread(own_broker.start)

        await run.inject("single broker stopped", breaks, repairs, down_s=10.0)
        await run.finish()
        # Kafka down = still accepted: no hospital had to send anything twice.
        assert run.load.summary()["retried_requests"] == 0, run.load.summary()
    finally:
        await asyncio.to_thread(platform.stop)


async def test_three_brokers_lose_a_broker_then_the_controller(kafka_cluster3: KafkaCluster, tmp_path: Path) -> None:
    """Replication factor 3, min ISR 2: one broker killed (a partition leader), restarted and caught up,
    then the active controller killed and restarted, all while the platform produces; no hospital
    notices, nothing is lost or doubled."""
    platform = FaultPlatform(
        tmp_path,
        kafka_cluster3.bootstrap_servers,
        extra_env={"KAFKA_REPLICATION_FACTOR": "3", "KAFKA_MIN_INSYNC_REPLICAS": "2"},
    )
    await _started(platform)
    try:
        await wait_fully_replicated(platform.kafka)
        run = _run("three-brokers", "three brokers: kill a broker, then the controller", platform, seed=13)
        run.load.start()
        await asyncio.sleep(LEAD_S)
        for role in ("broker", "controller"):
            controller = active_controller(kafka_cluster3)
            if role == "controller":
                victim = controller
            else:
                leaders = await partition_leaders(platform.kafka)
                victim = max((n for n in leaders if n != controller), key=lambda n: leaders[n])

            async def breaks(victim: int = victim, role: str = role, controller: int = controller) -> str:
                await asyncio.to_thread(kafka_cluster3.kill_node, victim)
                return f"node {victim} killed (SIGKILL); the controller was node {controller}"

            async def repairs(victim: int = victim) -> None:
                await asyncio.to_thread(kafka_cluster3.start_node, victim)

            await run.inject(f"kill -9 the {role} (node {victim})", breaks, repairs, down_s=3.0)
            caught_up = await wait_fully_replicated(platform.kafka)
            log(f"three-brokers: node {victim} back in sync {caught_up} s after its restart")
            if role == "controller":
                assert active_controller(kafka_cluster3) != -1
        await run.finish()
        assert run.load.summary()["retried_requests"] == 0, run.load.summary()
    finally:
        await asyncio.to_thread(platform.stop)


@pytest.fixture
def own_postgres() -> Iterator[LocalPostgres]:
    """A PostgreSQL server of this test's own, to stop and start under the services."""
    ensure_installed()
    # The server runs as the postgres user, who cannot enter pytest's private temporary directories.
    directory = Path(tempfile.mkdtemp(prefix="registry-fault-postgres-"))
    directory.chmod(0o755)
    server = LocalPostgres(directory / "data", free_port=True, durable=False)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.postgres
async def test_postgres_stopped_under_the_services(
    kafka_bootstrap: str, own_postgres: LocalPostgres, tmp_path: Path
) -> None:
    """All four services on PostgreSQL; the server stops for a while and comes back. Intake refuses what it
    cannot store (the hospital sends again), consumers retry without dead-lettering, nothing is lost."""
    for name in PLATFORM_SERVICES:
        own_postgres.create_database(name)
    platform = FaultPlatform(
        tmp_path, kafka_bootstrap, database_urls={name: own_postgres.url(name) for name in PLATFORM_SERVICES}
    )
    await _started(platform)
    try:
        run = _run("postgres-restart", "stop PostgreSQL under the services and bring it back", platform, seed=14)
        run.load.start()
        await asyncio.sleep(LEAD_S)

        async def breaks() -> str:
            await asyncio.to_thread(own_postgres.stop)
            return "PostgreSQL stopped (fast shutdown: open transactions rolled back, clients cut off)"

        async def repairs() -> None:
            await asyncio.to_thread(own_postgres.start)

        await run.inject("PostgreSQL stopped", breaks, repairs, down_s=8.0)
        await run.finish()
        # What intake could not store it refused with "send again shortly", never a bare server error.
        assert set(run.load.summary()["retried_on"]) <= {"503", "no answer"}, run.load.summary()
    finally:
        await asyncio.to_thread(platform.stop)


@pytest.mark.postgres
async def test_consumer_rebalance_second_instances_join_and_leave(
    kafka_bootstrap: str, postgres_server: DatabaseServer, tmp_path: Path
) -> None:
    """A second validation, stats and export process joins its group while the first is busy (the
    partitions are split between them), then leaves; batches handed over mid-way are not applied twice."""
    databases = {name: f"fault_rebalance_{name}_{uuid.uuid4().hex[:8]}" for name in PLATFORM_SERVICES}
    for database in databases.values():
        postgres_server.create_database(database)
    platform = FaultPlatform(
        tmp_path, kafka_bootstrap, database_urls={n: postgres_server.url(d) for n, d in databases.items()}
    )
    consumers = ("validation", "stats", "export")
    try:
        await _started(platform)
        run = _run("rebalance", "consumer rebalance: a second instance joins and leaves", platform, seed=15)
        run.load.start()
        await asyncio.sleep(LEAD_S)

        async def join() -> str:
            await asyncio.gather(*(asyncio.to_thread(platform.start_second, name) for name in consumers))
            members = {name: await platform.group_members(name) for name in consumers}
            # Two processes of each, stats and export running two group members apiece.
            assert members == {"validation": 2, "stats": 2 * STATS_CONSUMERS, "export": 2 * EXPORT_CONSUMERS}
            return f"group members now {members}"

        async def leave() -> str:
            await asyncio.gather(*(asyncio.to_thread(platform.stop_second, name) for name in consumers))
            return "the second instances left (SIGTERM: finish the batch, commit, leave the group)"

        async def nothing() -> None:
            return None

        await run.inject("second validation, stats, export join", join, nothing, down_s=0.0)
        await asyncio.sleep(4)
        await run.inject("the second instances leave", leave, nothing, down_s=0.0)
        await run.finish()
    finally:
        await asyncio.to_thread(platform.stop)
        for database in databases.values():
            postgres_server.drop_database(database)
