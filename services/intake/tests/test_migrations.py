"""The Alembic migrations build exactly the schema the ORM models describe, on SQLite and PostgreSQL, and
0002 gives submissions stored before it the report of their chain of corrections."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.intake.app import MIGRATIONS
from services.intake.storage import Base
from shared.db import create_engine
from shared.db.migrations import upgrade
from shared.tests.migrations import assert_migrations_match_models


async def test_sqlite_schema_matches_the_models(tmp_path: Path) -> None:
    await assert_migrations_match_models(f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}", MIGRATIONS, Base.metadata)


@pytest.mark.postgres
async def test_postgres_schema_matches_the_models(postgres_url: str) -> None:
    await assert_migrations_match_models(postgres_url, MIGRATIONS, Base.metadata)


async def test_submissions_stored_before_report_ids_get_the_report_of_their_chain(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}")
    original, correction, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    try:
        await upgrade(engine, MIGRATIONS, "0001")
        async with engine.begin() as connection:
            vault = sa.table("identity_vault", *(sa.column(n) for n in ("pseudonym", "national_id_sealed", "birth_date",
                                                                        "sex", "kind", "created_at")))  # fmt: skip
            await connection.execute(
                sa.insert(vault).values(
                    pseudonym="a" * 32, national_id_sealed="x", birth_date="2015-06-01", sex="female", kind="f",
                    created_at=t0,
                )
            )  # fmt: skip
            columns = ("submission_id", "hospital_id", "form_type", "form_version", "tumour_ref", "child_pseudonym",
                       "form", "made_at", "received_at", "channel", "request_digest", "supersedes", "event_id",
                       "status", "findings")  # fmt: skip
            submissions = sa.table("submissions", *(sa.column(n) for n in columns))
            rows = [(other, None, 0), (original, None, 1), (correction, original, 2)]
            for submission_id, supersedes, minutes in rows:
                at = t0 + timedelta(minutes=minutes)
                await connection.execute(
                    sa.insert(submissions).values(
                        submission_id=submission_id.hex, hospital_id="ous", form_type="diagnosis", form_version=1,
                        tumour_ref="T-1" if supersedes or submission_id == original else "T-2",
                        child_pseudonym="a" * 32, form="{}", made_at=at, received_at=at, channel="http",
                        request_digest="d", supersedes=supersedes.hex if supersedes else None,
                        event_id=uuid.uuid4().hex, status="received", findings="[]",
                    )
                )  # fmt: skip
        await upgrade(engine, MIGRATIONS)
        async with engine.connect() as connection:
            result = await connection.execute(sa.text("select submission_id, report_id from submissions"))
            reports = {uuid.UUID(sid): uuid.UUID(rid) for sid, rid in result}
    finally:
        await engine.dispose()
    assert reports == {other: other, original: original, correction: original}
