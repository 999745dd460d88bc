"""The security suite's marker and its platform: the four services as processes on the session's broker,
with a synthetic run through them, shared by the suite's modules. The marker belongs in pyproject's
`markers` too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from deploy.synthetic import GeneratorConfig, Item, Kind, generate
from deploy.synthetic.streaming import produce_kafka
from tests.fault.harness import FaultPlatform, SteadyLoad, settle


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "security: access control, tokens, privacy of what the platform holds")


@dataclass
class SyntheticRun:
    """A platform and what was sent through it, settled: every topic, log and export record written."""

    platform: FaultPlatform
    load: SteadyLoad
    inbound_items: list[Item]
    settled: dict[str, int]

    @property
    def items(self) -> list[Item]:
        return [*self.load.items, *self.inbound_items]


@pytest.fixture(scope="package")
async def security_platform(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FaultPlatform]:
    platform = FaultPlatform(tmp_path_factory.mktemp("security"), kafka_bootstrap)
    await asyncio.to_thread(platform.start)
    try:
        yield platform
    finally:
        await asyncio.to_thread(platform.stop)


@pytest.fixture(scope="package")
async def synthetic_run(security_platform: FaultPlatform) -> SyntheticRun:
    """Two years of synthetic reports and reservations from the four hospitals, through the API (with the
    reservations registered by staff) and, for some, through the hospitals' inbound topic."""
    items = list(generate(GeneratorConfig(seed=21, start_year=2022, years=2, cases_per_year=40, reservation_share=0.1)))
    inbound = [i for i in items[400:] if i.kind is Kind.SUBMISSION][:40]
    load = SteadyLoad(items[:400], security_platform.url("intake"), security_platform.tokens, rate=40.0)
    load.start()
    await produce_kafka(inbound, security_platform.kafka)
    await load.wait()
    assert load.summary()["unanswered"] == 0
    settled = await settle(security_platform)
    return SyntheticRun(security_platform, load, inbound, settled)
