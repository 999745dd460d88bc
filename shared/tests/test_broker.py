"""The broker factory: every bootstrap server reaches the Kafka client as its own entry."""

from __future__ import annotations

from shared.kafka import create_broker
from shared.settings import KafkaSettings


def test_each_bootstrap_server_of_a_cluster_is_its_own_entry() -> None:
    # FastStream takes a string as one server: "a,b,c" unsplit is one unresolvable host name.
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096")
    broker = create_broker(settings, client_id="test")
    consumer = broker.config.broker_config.builder  # how FastStream builds its aiokafka consumers
    assert consumer.keywords["bootstrap_servers"] == ["127.0.0.1:19092", "127.0.0.1:19094", "127.0.0.1:19096"]
