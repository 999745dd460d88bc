"""Configuration of the stats service, from `STATS_*` environment variables."""

from __future__ import annotations

from typing import ClassVar
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.stats.domain.reminders import ReminderPolicy
from shared.settings import DatabaseUrl, ServiceSettings, database_url_field


class StatsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STATS_", extra="ignore")
    service_name: ClassVar[str] = "stats"

    database_url: DatabaseUrl = database_url_field("stats")
    http_port: int = Field(8003, ge=1, le=65535)

    # Reminder policy: a treatment report is owed this many days after the diagnosis date, follow-ups
    # these many years after it; a follow-up whose last contact is at most `follow_up_window_days` before
    # the due date counts as that year's report (check-ups are booked a little ahead).
    treatment_report_due_days: int = Field(30, ge=1)
    follow_up_years: tuple[int, ...] = (1, 3, 5)
    follow_up_window_days: int = Field(90, ge=0)
    # Days (report dates, the daily snapshots, when a reminder falls due) are the registry's local days.
    timezone: str = "Europe/Oslo"
    # The registry's quality target: a treatment report for at least this share of diagnosed tumours.
    treatment_report_target: float = Field(0.8, ge=0, le=1)

    # Changed scopes are published at most once per interval (coalescing), so a burst of events
    # yields a few snapshots a second per hospital, not one per batch.
    snapshot_interval_s: float = Field(0.5, gt=0)
    reminder_sweep_interval_s: float = Field(60.0, gt=0)
    # Members of the consumer group in this process, each applying its own partitions' batches: while
    # one waits for PostgreSQL, another computes (ordered by locks, see README; on SQLite they take turns).
    consumers: int = Field(2, ge=1, le=8)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("follow_up_years")
    @classmethod
    def _positive_years(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(year < 1 for year in value):
            raise ValueError("follow-up years must be 1 or more")
        return tuple(sorted(set(value)))

    @property
    def reminder_policy(self) -> ReminderPolicy:
        return ReminderPolicy(
            treatment_report_due_days=self.treatment_report_due_days,
            follow_up_years=self.follow_up_years,
            follow_up_window_days=self.follow_up_window_days,
        )
