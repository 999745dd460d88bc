"""The Alembic migrations build exactly the schema the ORM models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.validation.app import MIGRATIONS
from services.validation.storage import Base
from shared.tests.migrations import assert_migrations_match_models


async def test_sqlite_schema_matches_the_models(tmp_path: Path) -> None:
    await assert_migrations_match_models(f"sqlite+aiosqlite:///{tmp_path / 'validation.db'}", MIGRATIONS, Base.metadata)


@pytest.mark.postgres
async def test_postgres_schema_matches_the_models(postgres_url: str) -> None:
    await assert_migrations_match_models(postgres_url, MIGRATIONS, Base.metadata)
