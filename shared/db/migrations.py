"""Alembic, per service: each service keeps its own `migrations/` folder and runs it at start-up.

A service's `migrations/env.py` is two lines (`run_migrations(Base.metadata)`); this module holds the one
implementation of online migration on an async engine for SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import AsyncEngine


def alembic_config(script_location: Path, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine, script_location: Path, revision: str = "head") -> None:
    """Bring the service's database to `revision` on the engine the service itself uses."""

    def _run(connection: Connection) -> None:
        config = alembic_config(script_location)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(_run)


def run_migrations(metadata: MetaData) -> None:
    """Body of every service's `env.py`: migrate on the connection `upgrade` hands over, or, from the
    `alembic` command line (e.g. `--autogenerate`), on the `sqlalchemy.url` it was given."""
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(connection, metadata)
        return
    from shared.db.engine import create_engine

    async def _standalone() -> None:
        engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
        async with engine.begin() as conn:
            await conn.run_sync(_migrate, metadata)
        await engine.dispose()

    asyncio.run(_standalone())


def _migrate(connection: Connection, metadata: MetaData) -> None:
    # render_as_batch lets ALTERs work on SQLite, which cannot alter most things in place.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
