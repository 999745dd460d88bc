"""The check every service's migration tests make: its Alembic migrations build exactly the schema its
ORM models describe, and running them again at a restart migrates nothing."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from shared.db import create_engine
from shared.db.migrations import upgrade


async def assert_migrations_match_models(url: str, migrations: Path, metadata: MetaData) -> None:
    """Migrate the empty database at `url` with the service's `migrations` folder, twice, and compare
    the result with the models' `metadata`."""
    engine = create_engine(url)
    try:
        await upgrade(engine, migrations)
        await upgrade(engine, migrations)  # idempotent: a restart migrates nothing
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
        assert differences == []
    finally:
        await engine.dispose()
