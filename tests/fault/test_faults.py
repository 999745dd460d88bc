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
from pathlib import Path

import pytest

from tests.fault.harness import Canary, FaultPlatform, FaultRun, SteadyLoad, log, synthetic_items

pytestmark = [pytest.mark.fault, pytest.mark.kafka, pytest.mark.slow, pytest.mark.e2e]

RATE = 12.0  # submissions per second: steady, and modest on a shared 2-core machine


def _run(scenario: str, title: str, platform: FaultPlatform, items: int, seed: int) -> FaultRun:
    load = SteadyLoad(synthetic_items(items, seed), platform.url("intake"), platform.tokens, RATE)
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
        run = _run("kill-9", "kill -9 each service in turn, mid-batch, and restart it", platform, 700, seed=11)
        run.load.start()
        await asyncio.sleep(5)
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
