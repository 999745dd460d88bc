"""Create the platform's topics with their explicit settings (partitions, cleanup policy, ISR)."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from shared.settings import KafkaSettings
from shared.topics import ALL_TOPICS, TopicSpec


class TopicCreationError(RuntimeError):
    pass


async def create_missing(
    admin: AIOKafkaAdminClient, settings: KafkaSettings, topics: Sequence[TopicSpec] = ALL_TOPICS
) -> tuple[list[str], dict[str, str]]:
    """Create the topics that do not exist yet; return the names created and, per failed name, why.

    Existing topics are never altered: more partitions on a keyed topic would move children between
    partitions and break their order."""
    existing = set(await admin.list_topics())
    missing = [spec for spec in topics if settings.topic(spec) not in existing]
    if not missing:
        return [], {}
    response = await admin.create_topics(
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
    errors: dict[str, str] = {}
    for topic, code, *message in response.topic_errors:
        # Another process creating the same topic at the same moment is not a failure.
        if code and for_code(code) is not TopicAlreadyExistsError:
            errors[topic] = (message[0] if message else None) or for_code(code).__name__
    return [settings.topic(spec) for spec in missing if settings.topic(spec) not in errors], errors


async def ensure_topics(settings: KafkaSettings, topics: Sequence[TopicSpec] = ALL_TOPICS) -> list[str]:
    """Create the missing topics (see `create_missing`); raise if the broker refused any."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="registry-admin")
    await admin.start()
    try:
        created, errors = await create_missing(admin, settings, topics)
    finally:
        await admin.close()
    if errors:
        raise TopicCreationError("; ".join(f"{name}: {why}" for name, why in errors.items()))
    return created
