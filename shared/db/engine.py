"""Async engines for the two databases we run on: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    # Errors name the statement, never its values: they reach logs, and values can be pseudonyms.
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets the HTTP API read while a consumer writes; synchronous=NORMAL in WAL mode is still
            # durable across process crashes (only a power loss can drop the last transactions).
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# SQLSTATE classes of a server that cannot serve now, whatever the statement: 08 connection exception,
# 57P operator intervention (shutting down, starting up, crashed), 53 insufficient resources.
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53")


def _sqlstates(exc: BaseException) -> Iterator[str]:
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        sqlstate = getattr(candidate, "sqlstate", None)
        if isinstance(sqlstate, str):
            yield sqlstate


def transaction_conflict(exc: BaseException) -> bool:
    """Whether the database rolled the transaction back for colliding with a concurrent one (SQLSTATE
    class 40: deadlock detected, serialization failure): the same transaction, run again, succeeds."""
    return any(sqlstate.startswith("40") for sqlstate in _sqlstates(exc))


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot serve right now (down, starting up, shutting down,
    unreachable) rather than that the work is wrong: the same work will succeed later. asyncpg raises
    some of these (`CannotConnectNowError` while the server starts or stops) without SQLAlchemy's
    wrapping, so the SQLSTATE is looked at too."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    return any(sqlstate.startswith(_UNAVAILABLE_SQLSTATES) for sqlstate in _sqlstates(exc))
