"""Each consumer service alone, in this process, draining a pre-filled topic with every guarantee on.

The service is built by its own `create_app` and run through its lifespan (migrations, topics, the
FastStream batch subscriber from `shared.kafka.subscribe_batch`, its background tasks), on a real broker
and a database of its own on the benchmark's PostgreSQL server (fsync on). Only the HTTP server is left
out. The rate is read from the consumer group's committed offsets, which FastStream commits only after
the batch's transaction is durable: between the first commit and the last one.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from deploy.bench.infra import Drain, end_offsets, wait_drained
from shared.settings import KafkaSettings
from shared.topics import (
    RECEIPTS,
    RESERVATIONS,
    SUBMISSIONS_RECEIVED,
    SUBMISSIONS_REJECTED,
    SUBMISSIONS_VALIDATED,
    TopicSpec,
)

KEY = base64.urlsafe_b64encode(b"registry-benchmark-key-of-32-bytes!!").decode()

INPUTS: dict[str, tuple[TopicSpec, ...]] = {
    "validation": (SUBMISSIONS_RECEIVED,),
    "stats": (SUBMISSIONS_VALIDATED, SUBMISSIONS_REJECTED, RECEIPTS),
    "export": (SUBMISSIONS_VALIDATED, RESERVATIONS),
}


@dataclass
class ServiceDrain:
    service: str
    drain: Drain

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.drain.messages,
            "seconds": round(self.drain.seconds, 3),
            "per_second": round(self.drain.per_second, 1),
            "cpu_seconds": round(self.drain.cpu_seconds, 3),
            "cpu_us_per_message": round(1e6 * self.drain.cpu_seconds / max(self.drain.messages, 1), 1),
        }


def build_app(service: str, kafka: KafkaSettings, database_url: str, sink_url: str) -> FastAPI:
    if service == "validation":
        from services.validation.app import create_app as validation_app
        from services.validation.settings import ValidationSettings

        return validation_app(ValidationSettings(database_url=database_url, kafka=kafka, log_json=False))
    if service == "stats":
        from services.stats.app import create_app as stats_app
        from services.stats.settings import StatsSettings

        return stats_app(StatsSettings(database_url=database_url, kafka=kafka, log_json=False))
    if service == "export":
        from services.export.app import create_app as export_app
        from services.export.settings import ExportSettings

        return export_app(
            ExportSettings(
                database_url=database_url,
                kafka=kafka,
                pseudonym_key=KEY,
                sink="sql",
                sink_database_url=sink_url,
                instance_id="bench",
                log_json=False,
            )
        )
    raise ValueError(service)


async def drain_service(
    service: str, kafka: KafkaSettings, database_url: str, sink_url: str = "", *, timeout_s: float = 1800
) -> ServiceDrain:
    """Run `service` over its pre-filled input topics until its group has committed every offset."""
    topics = [kafka.topic(spec) for spec in INPUTS[service]]
    ends = await end_offsets(kafka.bootstrap_servers, topics)
    app = build_app(service, kafka, database_url, sink_url)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        drain = await wait_drained(kafka.bootstrap_servers, service, ends, timeout_s=timeout_s)
    return ServiceDrain(service, drain)


def topics_of(kafka: KafkaSettings, specs: Sequence[TopicSpec]) -> list[str]:
    return [kafka.topic(spec) for spec in specs]
