"""A FastStream `KafkaBroker` with the platform's producer and consumer defaults.

Producer: acks=all and idempotence, so an acknowledged event survives the loss of a broker and a retried
send is not written twice; zstd compression, and a small linger so concurrent sends share a request.
Consumer: NACK_ON_ERROR, never the at-most-once ack-first policy: an offset is committed only after the
handler returned, i.e. after its effect is durable; a failed batch is sought back and redelivered. No topic
auto-creation.
"""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry

from shared.settings import KafkaSettings
from shared.topics import DEAD_LETTER_MAX_BYTES


def create_broker(
    settings: KafkaSettings,
    client_id: str,
    registry: CollectorRegistry | None = None,
    logger: logging.Logger | None = None,
) -> KafkaBroker:
    middlewares = (KafkaPrometheusMiddleware(registry=registry, app_name=client_id),) if registry else ()
    return KafkaBroker(
        # A list, one server per entry: FastStream takes a string as *one* server, so "a:9092,b:9092"
        # would be a single unresolvable host name and a multi-broker cluster unreachable.
        settings.bootstrap_servers.split(","),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        compression_type=settings.compression,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=DEAD_LETTER_MAX_BYTES,  # the largest record a service sends is a dead letter
        allow_auto_create_topics=False,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        graceful_timeout=30.0,
        middlewares=middlewares,
        logger=logger or logging.getLogger(f"{client_id}.kafka"),
    )
