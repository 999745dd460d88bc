"""Kafka plumbing: the broker factory with safe defaults, topic administration, batch consumption."""

from shared.kafka.broker import create_broker
from shared.kafka.consumer import Delivery, subscribe_batch
from shared.kafka.producer import Outgoing, publish_all

__all__ = ["Delivery", "Outgoing", "create_broker", "publish_all", "subscribe_batch"]
