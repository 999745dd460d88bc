"""Group commit: submissions arriving together share a transaction, each answered after its commit, and
one submission's failure is never another's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.app import MIGRATIONS
from services.intake.groupcommit import GroupCommit, Register
from services.intake.storage import Database, Draft
from shared.db import create_engine, session_factory
from shared.db.migrations import upgrade


class Refusal(Exception):
    pass


@pytest.fixture
async def db(tmp_path: Path) -> Database:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}")
    await upgrade(engine, MIGRATIONS)
    return Database(session_factory(engine))


async def drafts(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Draft)) or 0)


def writer(transactions: list[int]) -> Register[str, str]:
    async def register(session: AsyncSession, items: Sequence[str]) -> list[str | Exception]:
        transactions.append(id(session))
        results: list[str | Exception] = []
        for item in items:
            if item == "refused":
                results.append(Refusal(item))  # fails alone, before writing, as Intake._register refuses
                continue
            now = datetime.now(UTC)
            draft = Draft(
                draft_id=uuid.uuid4(), hospital_id="ous", version=1, content_sealed="x", created_at=now, updated_at=now
            )
            session.add(draft)
            await session.flush()
            if item == "poison":
                raise RuntimeError("spoils the whole transaction")
            results.append(item.upper())
        return results

    return register


async def test_submissions_arriving_together_share_one_transaction(db: Database) -> None:
    sessions: list[int] = []
    group = GroupCommit(db, writer(sessions))

    results = await asyncio.gather(*(group.register(f"s{n}") for n in range(20)), return_exceptions=True)

    assert results == [f"S{n}" for n in range(20)]
    assert len(set(sessions)) < 20  # grouped: fewer transactions than submissions
    assert await drafts(db) == 20


async def test_a_refused_submission_fails_alone(db: Database) -> None:
    group = GroupCommit(db, writer([]))

    results = await asyncio.gather(
        group.register("a"), group.register("refused"), group.register("b"), return_exceptions=True
    )

    assert results[0] == "A" and results[2] == "B"
    assert isinstance(results[1], Refusal)
    assert await drafts(db) == 2


async def test_a_failing_group_is_retried_one_by_one(db: Database) -> None:
    group = GroupCommit(db, writer([]))

    results = await asyncio.gather(*(group.register(i) for i in ("a", "poison", "b", "c")), return_exceptions=True)

    assert [results[0], results[2], results[3]] == ["A", "B", "C"]
    assert isinstance(results[1], RuntimeError)
    assert await drafts(db) == 3  # the poison's row rolled back with its own transaction only
