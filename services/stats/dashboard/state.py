"""What the dashboard knows: the latest snapshot per scope and the open reminders per hospital (reports per
month come with the snapshot, `Figures.reports_by_month`). Pure: records in, changes out, no I/O.

Snapshots carry a per-scope `version` that only increases, so one older than the one held (a late
arrival, a republication) is dropped. Reminders are keyed by hospital, so one reminder's events arrive in
the order they were published: the latest says whether it is open.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from shared.auth import Principal
from shared.events.stats import REGISTRY_SCOPE, ReminderChanged, ReminderStatus, StatsSnapshot
from shared.hospitals import BY_ID, HOSPITALS


@dataclass(frozen=True, slots=True)
class Change:
    """One change to push to the browsers that may see `scope`."""

    kind: Literal["scope", "reminder"]
    scope: str  # a hospital id or "registry": whose figures these are, which decides who may see them
    data: str  # the event's JSON, serialised once for every browser watching


class ScopeView(BaseModel):
    scope: str
    snapshot: StatsSnapshot


class HospitalView(BaseModel):
    id: str
    name: str
    region: str


class StateView(BaseModel):
    """Everything one principal may see, as the page and `/api/state` receive it."""

    today: date
    hospitals: list[HospitalView]
    scopes: dict[str, ScopeView]
    reminders: dict[str, list[ReminderChanged]]  # open reminders per hospital, by due date


@dataclass
class DashboardState:
    tz: ZoneInfo
    snapshots: dict[str, StatsSnapshot] = field(default_factory=dict)
    reminders: dict[str, dict[uuid.UUID, ReminderChanged]] = field(default_factory=dict)

    def apply_snapshot(self, snapshot: StatsSnapshot) -> Change | None:
        held = self.snapshots.get(snapshot.scope)
        if held is not None and snapshot.version <= held.version:
            return None  # late or republished: the snapshot held is as new or newer
        self.snapshots[snapshot.scope] = snapshot
        return Change("scope", snapshot.scope, self._scope_view(snapshot.scope).model_dump_json())

    def apply_reminder(self, reminder: ReminderChanged) -> Change | None:
        open_here = self.reminders.setdefault(reminder.hospital_id, {})
        if reminder.status is ReminderStatus.OPEN:
            if open_here.get(reminder.reminder_id) == reminder:
                return None  # republished after a crash: already shown
            open_here[reminder.reminder_id] = reminder
        elif open_here.pop(reminder.reminder_id, None) is None:
            return None  # cleared, and not open here: nothing on any page changes
        return Change("reminder", reminder.hospital_id, reminder.model_dump_json())

    def view(self, principal: Principal, today: date) -> StateView:
        return StateView(
            today=today,
            hospitals=[h for h in self.hospitals() if principal.may_see(h.id)],
            scopes={scope: self._scope_view(scope) for scope in sorted(self.snapshots) if principal.may_see(scope)},
            reminders={
                hospital: sorted(open_here.values(), key=lambda r: (r.due_date, r.tumour_ref))
                for hospital, open_here in sorted(self.reminders.items())
                if principal.may_see(hospital) and open_here
            },
        )

    def hospitals(self) -> list[HospitalView]:
        """The registry's hospitals, and any other unit that has figures (named by its id)."""
        known = [HospitalView(id=h.id, name=h.name, region=h.region) for h in HOSPITALS]
        others = sorted(
            {*self.snapshots, *self.reminders} - {*BY_ID, REGISTRY_SCOPE},
        )
        return known + [HospitalView(id=unit, name=unit, region="") for unit in others]

    def knows(self, hospital_id: str) -> bool:
        return hospital_id in BY_ID or hospital_id in self.snapshots or hospital_id in self.reminders

    def _scope_view(self, scope: str) -> ScopeView:
        return ScopeView(scope=scope, snapshot=self.snapshots[scope])
