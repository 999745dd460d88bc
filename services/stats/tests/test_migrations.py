"""The Alembic migrations build exactly the schema the ORM models describe, on SQLite and PostgreSQL, and
carry a database's reminders into their tumours' facts (0003)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import insert

from services.stats import storage
from services.stats.app import MIGRATIONS
from services.stats.domain.model import Diagnosis, Reminder, ReminderState, Tumour
from services.stats.domain.reminders import reminder_id
from shared.db import create_engine, session_factory
from shared.db.migrations import upgrade
from shared.events.stats import ReminderKind, ReminderStatus
from shared.tests.migrations import assert_migrations_match_models


async def test_sqlite_schema_matches_the_models(tmp_path: Path) -> None:
    await assert_migrations_match_models(
        f"sqlite+aiosqlite:///{tmp_path / 'stats.db'}", MIGRATIONS, storage.Base.metadata
    )


@pytest.mark.postgres
async def test_postgres_schema_matches_the_models(postgres_url: str) -> None:
    await assert_migrations_match_models(postgres_url, MIGRATIONS, storage.Base.metadata)


def _reminder(
    pseudonym: str, tumour_ref: str, kind: ReminderKind, year: int | None, status: ReminderStatus
) -> Reminder:
    return Reminder(
        reminder_id=reminder_id("ous", tumour_ref, kind, year),
        pseudonym=pseudonym,
        hospital_id="ous",
        tumour_ref=tumour_ref,
        kind=kind,
        follow_up_year=year,
        diagnosis_date=date(2020, 3, 1),
        due_date=date(2021, 3, 1),
        status=status,
        transitions=3 if status is ReminderStatus.OPEN else 2,
        changed_on=date(2024, 5, 6),
    )


async def test_reminders_move_into_their_tumours_facts(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'stats.db'}")
    sessions = session_factory(engine)
    tumour = Tumour("p-1", "ous", "T1")
    tumour.diagnosis = Diagnosis(
        uuid.uuid4(), datetime.fromisoformat("2020-03-05T10:00:00+00:00"), date(2020, 3, 1), date(2012, 1, 1),
        "female", "C71.9", "9440", 7, "III", "IIIb", False,
    )  # fmt: skip
    row = storage._tumour_row(tumour)
    row["facts"] = orjson.dumps({k: v for k, v in orjson.loads(row["facts"]).items() if k != "reminders"}).decode()
    follow_up = _reminder("p-1", "T1", ReminderKind.FOLLOW_UP_DUE, 1, ReminderStatus.OPEN)
    treatment = _reminder("p-1", "T1", ReminderKind.TREATMENT_REPORT_MISSING, None, ReminderStatus.CLEARED)
    orphan = _reminder("p-2", "T9", ReminderKind.TREATMENT_REPORT_MISSING, None, ReminderStatus.CLEARED)
    try:
        await upgrade(engine, MIGRATIONS, "0002")
        async with sessions.begin() as session:
            await session.execute(insert(storage.TumourRow), [row])
            await storage.save_reminders(session, [follow_up, treatment, orphan])

        await upgrade(engine, MIGRATIONS)

        async with sessions() as session:
            children = await storage.load_children(session, ["p-1", "p-2"])
            assert await storage.all_reminders(session) != []  # the API's table keeps them
    finally:
        await engine.dispose()
    migrated = children["p-1"][("ous", "T1")]
    assert migrated.diagnosis == tumour.diagnosis
    assert migrated.reminders == {
        (ReminderKind.FOLLOW_UP_DUE, 1): ReminderState(
            ReminderStatus.OPEN, date(2020, 3, 1), date(2021, 3, 1), 3, date(2024, 5, 6)
        ),
        (ReminderKind.TREATMENT_REPORT_MISSING, None): ReminderState(
            ReminderStatus.CLEARED, date(2020, 3, 1), date(2021, 3, 1), 2, date(2024, 5, 6)
        ),
    }
    bare = children["p-2"][("ous", "T9")]  # kept so that its transition count goes on
    assert (bare.diagnosis, bare.tallies, list(bare.reminders)) == (
        None,
        {},
        [(ReminderKind.TREATMENT_REPORT_MISSING, None)],
    )


async def test_a_submission_stored_before_received_counted_existed_loads_as_not_counted(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'stats.db'}")
    submission_id = uuid.uuid4()
    old_facts = ["ous", "diagnosis", 2024, False, "accepted", "p-1", "T1", []]  # 8 items: no `received counted`
    try:
        await upgrade(engine, MIGRATIONS)
        async with session_factory(engine).begin() as session:
            await session.execute(
                insert(storage.SubmissionRow),
                [{"submission_id": submission_id, "facts": orjson.dumps(old_facts).decode()}],
            )
            [loaded] = (await storage.load_submissions(session, [submission_id])).values()
    finally:
        await engine.dispose()
    assert (loaded.outcome, loaded.receipted, loaded.received_counted) == ("accepted", False, False)
