"""Operator logic on Kafka, apart from the CLI so tests can drive it: topics, consumer lag, dead letters,
replay. Each function takes `KafkaSettings` (bootstrap servers, topic prefix, replication) and returns
plain data; `deploy/cli` renders it.
"""

from __future__ import annotations


class OpsError(RuntimeError):
    """A condition the operator has to act on; the message says what is wrong and what to do."""
