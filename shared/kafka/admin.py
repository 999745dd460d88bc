"""Create the platform's topics with their explicit settings (partitions, cleanup policy, ISR)."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.settings import KafkaSettings
from shared.topics import ALL_TOPICS, TopicSpec


async def ensure_topics(settings: KafkaSettings, topics: Iterable[TopicSpec] = ALL_TOPICS) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Existing topics are left as
    they are (changing partitions of a keyed topic would move children between partitions)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="registry-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in topics if settings.topic(spec) not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        settings.topic(spec),
                        num_partitions=spec.partitions,
                        replication_factor=settings.replication_factor,
                        topic_configs=spec.config(settings.min_insync_replicas),
                    )
                    for spec in missing
                ]
            )
        return [settings.topic(spec) for spec in missing]
    finally:
        await admin.close()
