"""The broker factory: every bootstrap server reaches the Kafka client as its own entry, and a dead letter
of the largest record a topic accepts can be published."""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet

from shared.events import DeadLetter
from shared.events.base import utcnow
from shared.kafka import create_broker
from shared.settings import KafkaSettings
from shared.topics import DEAD_LETTER_MAX_BYTES, DEAD_LETTERS


def test_each_bootstrap_server_of_a_cluster_is_its_own_entry() -> None:
    # FastStream takes a string as one server: "a,b,c" unsplit is one unresolvable host name.
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096")
    broker = create_broker(settings, client_id="test")
    consumer = broker.config.broker_config.builder  # how FastStream builds its aiokafka consumers
    assert isinstance(consumer, functools.partial)
    assert consumer.keywords["bootstrap_servers"] == ["127.0.0.1:19092", "127.0.0.1:19094", "127.0.0.1:19096"]


def test_the_dead_letter_of_the_largest_record_a_topic_accepts_can_be_published() -> None:
    largest = 1_048_588  # the broker's default message.max.bytes, which every source topic keeps
    sealed = Fernet(Fernet.generate_key()).encrypt(b"x" * largest)  # inbound letters are sealed first
    letter = DeadLetter(
        producer="intake",
        source_topic="hospital.inbound.submissions",
        partition=0,
        offset=0,
        consumer_group="intake-inbound",
        key_b64=None,
        value_b64=base64.b64encode(sealed).decode(),
        value_encoding="fernet",
        error_type="ValidationError",
        error="<root>: Invalid JSON",
        attempts=1,
        failed_at=utcnow(),
    )
    size = len(letter.to_json())
    assert size < DEAD_LETTER_MAX_BYTES
    assert int(DEAD_LETTERS.config(min_insync_replicas=1)["max.message.bytes"]) >= size
    # What FastStream hands aiokafka's producer when it connects: its own check comes before the broker's.
    connection = create_broker(KafkaSettings(), client_id="test")._connection_kwargs
    assert connection["max_request_size"] >= size
