"""The Alembic migrations build exactly the schema the ORM models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from services.validation.app import MIGRATIONS
from services.validation.storage import Base
from shared.db import create_engine
from shared.db.migrations import upgrade


def _differences(connection: Connection) -> list[Any]:
    return compare_metadata(MigrationContext.configure(connection), Base.metadata)


async def _assert_matches(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine, MIGRATIONS)
        await upgrade(engine, MIGRATIONS)  # idempotent: a restart migrates nothing
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()


async def test_sqlite_schema_matches_the_models(tmp_path: Path) -> None:
    await _assert_matches(f"sqlite+aiosqlite:///{tmp_path / 'validation.db'}")


@pytest.mark.postgres
async def test_postgres_schema_matches_the_models(postgres_url: str) -> None:
    await _assert_matches(postgres_url)
