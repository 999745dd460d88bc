"""Reads `stats.snapshots` and `stats.reminders` from their beginning into the state, and hands every change
to the hub.

The consumer has no group: every dashboard process reads every partition itself (its state is the whole
topics), commits nothing and leaves no group behind for operators to clean up. Records are decoded with
the shared strict models; one that does not decode is counted and skipped — a reader has no business
dead-lettering what it cannot show. After an error the consumer reconnects where it left off, so the
browsers watching see no change replayed.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Counter

from services.stats.dashboard.state import Change, DashboardState
from services.stats.dashboard.stream import Hub
from shared.events.stats import StatsSnapshot
from shared.kafka.admin import ensure_topics
from shared.kafka.codec import decoder_for
from shared.kafka.consumer import UNDECODABLE_ERRORS
from shared.settings import KafkaSettings
from shared.topics import REMINDERS, STATS_SNAPSHOTS

log = logging.getLogger(__name__)

TOPICS = (STATS_SNAPSHOTS, REMINDERS)
RECONNECT_S = 2.0

RECORDS_TOTAL = Counter(
    "dashboard_records_total",
    "Records the dashboard read, by topic and outcome (applied, unchanged: older or already shown, undecodable).",
    ["topic", "outcome"],
)


class Feed:
    def __init__(self, settings: KafkaSettings, state: DashboardState, hub: Hub) -> None:
        self.settings = settings
        self.state = state
        self.hub = hub
        # Set once the state holds every record the topics had when the process started: until then a
        # page would show figures that are about to jump, so the process is not ready.
        self.caught_up = asyncio.Event()
        self._specs = {settings.topic(spec): spec for spec in TOPICS}
        self._decoders = {topic: decoder_for(spec) for topic, spec in self._specs.items()}
        self._next: dict[TopicPartition, int] = {}  # where to resume after a reconnect

    async def run(self) -> None:
        """Consume until cancelled."""
        while True:
            try:
                await self._consume()
            except Exception as exc:
                log.warning("reading the stats topics failed (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(RECONNECT_S)

    def apply(self, topic: str, value: bytes | None) -> Change | None:
        """Decode one record, apply it and publish the change it makes (if any)."""
        name = self._specs[topic].name
        if value is None:
            return None  # a tombstone: stats never deletes a scope, and an empty record has nothing to show
        try:
            event = self._decoders[topic](value)
        except UNDECODABLE_ERRORS:
            RECORDS_TOTAL.labels(topic=name, outcome="undecodable").inc()
            log.warning("an undecodable record on %s was skipped", topic)
            return None
        if isinstance(event, StatsSnapshot):
            change = self.state.apply_snapshot(event)
        else:
            change = self.state.apply_reminder(event)
        RECORDS_TOTAL.labels(topic=name, outcome="applied" if change else "unchanged").inc()
        if change is not None:
            self.hub.publish(change)
        return change

    async def _consume(self) -> None:
        # The topics exist before stats first publishes, so the dashboard may start first.
        await ensure_topics(self.settings, TOPICS)
        partitions = await self._partitions()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            client_id="stats-dashboard",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            consumer.assign(partitions)
            beginning = await consumer.beginning_offsets(partitions)
            for tp in partitions:  # explicit offsets: a lazy seek_to_beginning can lose to the offset reset
                consumer.seek(tp, self._next.get(tp, beginning[tp]))
            end = await consumer.end_offsets(partitions)
            behind = set() if self.caught_up.is_set() else {tp for tp in partitions if end[tp] > beginning[tp]}
            self._check_caught_up(behind)
            while True:
                fetched = await consumer.getmany(timeout_ms=1000, max_records=1000)
                for tp, records in fetched.items():
                    for record in records:
                        self.apply(tp.topic, record.value)
                        self._next[tp] = record.offset + 1
                for tp in list(behind):
                    if await consumer.position(tp) >= end[tp]:
                        behind.discard(tp)
                self._check_caught_up(behind)
        finally:
            await consumer.stop()

    def _check_caught_up(self, behind: set[TopicPartition]) -> None:
        if not behind and not self.caught_up.is_set():
            self.caught_up.set()
            log.info(
                "caught up with the stats topics: %d scopes, %d open reminders",
                len(self.state.snapshots),
                sum(len(r) for r in self.state.reminders.values()),
            )

    async def _partitions(self) -> list[TopicPartition]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers, client_id="stats-dashboard")
        await admin.start()
        try:
            described = await admin.describe_topics(list(self._specs))
        finally:
            await admin.close()
        return sorted(TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"])
