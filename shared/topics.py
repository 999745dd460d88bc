"""Every topic of the platform in one place: its name, what it is keyed by, its partitions and policy.

Topics are created by the platform (`shared.kafka.admin.ensure_topics`, `registry topics create`) with
these explicit settings; brokers run with auto-creation off, so a typo fails loudly instead of creating
a one-partition topic nobody reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from shared.events import (
    DeadLetter,
    Event,
    ReceiptIssued,
    ReminderChanged,
    ReservationRegistered,
    ReservationWithdrawn,
    StatsSnapshot,
    SubmissionReceived,
    SubmissionRejected,
    SubmissionValidated,
)

# Clinical topics share a partition count so a child's events land on the same partition number
# everywhere, and a consumer group scales out to this many processes.
CLINICAL_PARTITIONS = 6
# A dead letter carries the original record in base64, sealed first when it comes from the inbound topic:
# up to 1.8 times the 1 MB any source topic accepts (the broker's default). A smaller limit would make
# the dead letter of a large poison record unpublishable, and its partition stuck behind it for good.
DEAD_LETTER_MAX_BYTES = 4 * 1024 * 1024


class Key(StrEnum):
    CHILD_PSEUDONYM = "child pseudonym"
    HOSPITAL_ID = "hospital id"
    SCOPE = "hospital id, or 'registry'"
    SOURCE_KEY = "the dead message's own key"
    DEAD_LETTER_ID = "the dead letter's event id"


class Cleanup(StrEnum):
    DELETE = "delete"
    COMPACT = "compact"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    key: Key
    events: tuple[type[Event], ...]
    producer: str  # the service (or outside party) that writes the topic
    consumer_groups: tuple[str, ...]  # the platform's consumer groups that read it
    partitions: int = CLINICAL_PARTITIONS
    cleanup: Cleanup = Cleanup.DELETE
    retention_ms: int = -1  # registry data is kept; compaction or explicit deletes shrink topics
    extra_config: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def config(self, min_insync_replicas: int) -> dict[str, str]:
        return {
            "cleanup.policy": self.cleanup.value,
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(min_insync_replicas),
            **self.extra_config,
        }


SUBMISSIONS_RECEIVED = TopicSpec(
    "intake.submissions.received",
    Key.CHILD_PSEUDONYM,
    (SubmissionReceived,),
    "intake",
    ("validation",),
    description="Every submission intake accepted, identity replaced by the registry pseudonym.",
)
HOSPITAL_INBOUND = TopicSpec(
    "hospital.inbound.submissions",
    Key.HOSPITAL_ID,
    (),  # raw hospital submissions (intake's API body); intake validates them as it does HTTP bodies
    "hospitals",
    ("intake-inbound",),
    description="Hospitals may produce their submissions here instead of calling the HTTP API.",
)
SUBMISSIONS_VALIDATED = TopicSpec(
    "validation.submissions.validated",
    Key.CHILD_PSEUDONYM,
    (SubmissionValidated,),
    "validation",
    ("intake", "stats", "export"),
    description="Accepted submissions with their ICCC-3 code and check findings.",
)
SUBMISSIONS_REJECTED = TopicSpec(
    "validation.submissions.rejected",
    Key.CHILD_PSEUDONYM,
    (SubmissionRejected,),
    "validation",
    ("intake", "stats"),
    description="Rejected submissions with the findings that rejected them.",
)
RECEIPTS = TopicSpec(
    "intake.receipts",
    Key.HOSPITAL_ID,
    (ReceiptIssued,),
    "intake",
    ("stats",),
    partitions=3,
    description="A receipt for every submitted message and every change of its status.",
)
RESERVATIONS = TopicSpec(
    "intake.reservations",
    Key.CHILD_PSEUDONYM,
    (ReservationRegistered, ReservationWithdrawn),
    "intake",
    ("export",),
    cleanup=Cleanup.COMPACT,
    description="NOPHO-Care reservations; the latest event per child is the child's state.",
)
STATS_SNAPSHOTS = TopicSpec(
    "stats.snapshots",
    Key.SCOPE,
    (StatsSnapshot,),
    "stats",
    (),
    partitions=3,
    cleanup=Cleanup.COMPACT,
    extra_config={"min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"},
    description="The latest projection per hospital and registry-wide, for dashboards.",
)
REMINDERS = TopicSpec(
    "stats.reminders",
    Key.HOSPITAL_ID,
    (ReminderChanged,),
    "stats",
    (),
    partitions=3,
    description="Reports a hospital owes, opened when due and cleared when they arrive.",
)
DEAD_LETTERS = TopicSpec(
    "registry.dead-letters",
    Key.SOURCE_KEY,
    (DeadLetter,),
    "every service",
    (),
    partitions=3,
    extra_config={"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)},
    description="Messages a consumer gave up on, with the error, for inspection and redrive.",
)
DEAD_LETTERS_REDRIVEN = TopicSpec(
    "registry.dead-letters.redriven",
    Key.DEAD_LETTER_ID,
    (),  # operator records (`deploy.ops.deadletters.Redriven`), not platform events; nothing consumes them
    "operators",
    (),
    partitions=1,
    cleanup=Cleanup.COMPACT,
    description="Which dead letters an operator redrove, when and where to: a later redrive skips them.",
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    HOSPITAL_INBOUND,
    SUBMISSIONS_RECEIVED,
    SUBMISSIONS_VALIDATED,
    SUBMISSIONS_REJECTED,
    RECEIPTS,
    RESERVATIONS,
    STATS_SNAPSHOTS,
    REMINDERS,
    DEAD_LETTERS,
    DEAD_LETTERS_REDRIVEN,
)
