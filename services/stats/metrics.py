"""The stats service's domain metrics (in the process's default registry, served on `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SUBMISSIONS_ACCEPTED_TOTAL = Counter(
    "stats_submissions_accepted_total",
    "Accepted submissions stats applied, by hospital and form type.",
    ["hospital", "form_type"],
)
SUBMISSIONS_REJECTED_TOTAL = Counter(
    "stats_submissions_rejected_total",
    "Rejected submissions stats applied, by hospital and form type.",
    ["hospital", "form_type"],
)
REMINDERS_OUTSTANDING = Gauge(
    "stats_reminders_outstanding",
    "Reports hospitals owe the registry (open reminders), by hospital and kind.",
    ["hospital", "kind"],
)
SNAPSHOTS_PUBLISHED_TOTAL = Counter(
    "stats_snapshots_published_total",
    "Stats snapshots published on the snapshot topic, by scope.",
    ["scope"],
)
