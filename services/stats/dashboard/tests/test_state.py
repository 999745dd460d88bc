"""The dashboard's state: latest snapshot per scope by version, open reminders, what each principal sees."""

from __future__ import annotations

import uuid
from datetime import date
from zoneinfo import ZoneInfo

from services.stats.dashboard.state import DashboardState
from services.stats.dashboard.tests.factories import OUS, STAFF, reminder, snapshot
from shared.events.stats import ReminderStatus

OSLO = ZoneInfo("Europe/Oslo")
TODAY = date(2025, 3, 10)


def test_a_newer_version_replaces_the_snapshot_and_an_older_one_arriving_late_is_ignored() -> None:
    state = DashboardState(OSLO)
    assert state.apply_snapshot(snapshot("ous", 2, received=2)) is not None
    assert state.apply_snapshot(snapshot("ous", 1, received=1)) is None  # late
    assert state.apply_snapshot(snapshot("ous", 2, received=2)) is None  # republished
    change = state.apply_snapshot(snapshot("ous", 3, received=3))
    assert change is not None
    assert (change.kind, change.scope) == ("scope", "ous")
    assert '"version":3' in change.data
    assert state.snapshots["ous"].version == 3


def test_versions_are_per_scope() -> None:
    state = DashboardState(OSLO)
    state.apply_snapshot(snapshot("ous", 7))
    assert state.apply_snapshot(snapshot("unn", 1)) is not None


def test_reminders_open_and_clear_by_id() -> None:
    state = DashboardState(OSLO)
    first, second = uuid.uuid4(), uuid.uuid4()
    assert state.apply_reminder(reminder("ous", reminder_id=first)) is not None
    assert state.apply_reminder(reminder("ous", reminder_id=second, tumour_ref="T-2")) is not None
    cleared = state.apply_reminder(reminder("ous", ReminderStatus.CLEARED, reminder_id=first))
    assert cleared is not None and cleared.kind == "reminder" and cleared.scope == "ous"
    assert list(state.reminders["ous"]) == [second]
    # Clearing one that is not open changes nothing any page shows.
    assert state.apply_reminder(reminder("ous", ReminderStatus.CLEARED, reminder_id=first)) is None
    # An open reminder republished after a crash is the same reminder.
    again = reminder("ous", reminder_id=uuid.uuid4())
    state.apply_reminder(again)
    assert state.apply_reminder(again) is None


def test_staff_see_every_scope_and_hospital_and_a_hospital_only_its_own() -> None:
    state = DashboardState(OSLO)
    for scope in ("registry", "ous", "unn"):
        state.apply_snapshot(snapshot(scope, 1, received=1))
    state.apply_reminder(reminder("ous"))
    state.apply_reminder(reminder("unn"))

    staff = state.view(STAFF, TODAY)
    assert set(staff.scopes) == {"registry", "ous", "unn"}
    assert set(staff.reminders) == {"ous", "unn"}
    assert [h.id for h in staff.hospitals] == ["ous", "haukeland", "st-olav", "unn"]

    ous = state.view(OUS, TODAY)
    assert set(ous.scopes) == {"ous"}
    assert set(ous.reminders) == {"ous"}
    assert [h.id for h in ous.hospitals] == ["ous"]
    assert ous.today == TODAY


def test_a_unit_outside_the_hospital_list_is_shown_under_its_id() -> None:
    state = DashboardState(OSLO)
    state.apply_snapshot(snapshot("test-unit", 1))
    assert state.knows("test-unit") and state.knows("ous") and not state.knows("nowhere")
    assert state.view(STAFF, TODAY).hospitals[-1].name == "test-unit"
