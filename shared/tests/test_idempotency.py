"""Claiming processed event ids: each id is new exactly once per consumer, and only if the claim commits."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy.orm import DeclarativeBase

from shared.db import ProcessedMessageMixin, claim_new, create_engine, session_factory


class Base(DeclarativeBase):
    pass


class Processed(ProcessedMessageMixin, Base):
    pass


async def _claims(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    sessions = session_factory(engine)
    a, b, c = (uuid.uuid4() for _ in range(3))
    try:
        async with sessions.begin() as session:
            assert await claim_new(session, Processed, "stats", [a, b, a]) == {a, b}
        async with sessions.begin() as session:
            assert await claim_new(session, Processed, "stats", [a, c]) == {c}
            assert await claim_new(session, Processed, "export", [a]) == {a}  # consumers are separate
        async with sessions() as session, session.begin():
            assert await claim_new(session, Processed, "stats", [uuid.UUID(int=7)]) == {uuid.UUID(int=7)}
            await session.rollback()  # the effect failed: so did the claim
        async with sessions.begin() as session:
            assert await claim_new(session, Processed, "stats", [uuid.UUID(int=7), b]) == {uuid.UUID(int=7)}
            assert await claim_new(session, Processed, "stats", []) == set()
    finally:
        await engine.dispose()


async def test_claims_on_sqlite(tmp_path: Path) -> None:
    await _claims(f"sqlite+aiosqlite:///{tmp_path / 'claims.db'}")


@pytest.mark.postgres
async def test_claims_on_postgres(postgres_url: str) -> None:
    await _claims(postgres_url)
