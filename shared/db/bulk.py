"""Many rows in one statement: the batch writes of the consumers (processed ids, projections, counters).

On PostgreSQL the rows travel as one array per column and the server unnests them
(`INSERT ... SELECT * FROM unnest(:a, :b, ...)`): one parameter set, one execution, one plan. The
alternative, a parameter set per row (executemany, or SQLAlchemy's multi-row VALUES for RETURNING),
makes SQLAlchemy and asyncpg handle each row in Python and PostgreSQL run the statement once per row;
for the 2,000-row batches of a backlog that was a tenth of a consumer's CPU. SQLite gets the
executemany, which it runs in-process anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Column, Table, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

Rows = Sequence[Mapping[str, Any]]
Update = Mapping[str, Callable[[Any], Any]]  # column -> its new value, given the offered row (EXCLUDED)


def is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _unnested(table: Table, columns: Sequence[str]) -> postgresql.Insert:
    """`INSERT INTO table (columns) SELECT * FROM unnest(:columns...)`, an array parameter per column."""
    arrays = [bindparam(name, type_=postgresql.ARRAY(table.c[name].type)) for name in columns]
    rows = func.unnest(*arrays).table_valued(*columns).render_derived()
    return postgresql.insert(table).from_select(list(columns), select(*rows.c))


async def insert_rows(
    session: AsyncSession,
    table: Table,
    rows: Rows,
    *,
    conflict: Sequence[str],
    update: Update | None = None,
    returning: Column[Any] | None = None,
) -> list[Any]:
    """Insert `rows` (dicts of the same columns); on a `conflict` over these key columns do nothing, or
    set the columns of `update`. Returns the `returning` column of the rows inserted or updated. No two
    rows may share a key: PostgreSQL refuses to update a row twice in one statement."""
    if not rows:
        return []
    columns = list(rows[0])
    statement: Insert
    if is_postgresql(session):
        statement = _unnested(table, columns)
        parameters: Any = {name: [row[name] for row in rows] for name in columns}
    else:
        statement = sqlite.insert(table)
        parameters = list(rows)
    statement = _on_conflict(statement, conflict, update)
    if returning is None:
        await session.execute(statement, parameters)
        return []
    return list((await session.execute(statement.returning(returning), parameters)).scalars())


async def upsert(session: AsyncSession, table: Table, rows: Rows) -> None:
    """Insert `rows`, or replace every other column of the row already there with the same primary key."""
    keys = [column.name for column in table.primary_key]
    others = replace(column.name for column in table.columns if column.name not in keys)
    await insert_rows(session, table, rows, conflict=keys, update=others)


def _on_conflict(statement: Any, conflict: Sequence[str], update: Update | None) -> Any:
    if update is None:
        return statement.on_conflict_do_nothing(index_elements=list(conflict))
    set_ = {name: value(statement.excluded) for name, value in update.items()}
    return statement.on_conflict_do_update(index_elements=list(conflict), set_=set_)


def replace(columns: Iterable[str]) -> Update:
    """An `update` that takes these columns from the offered row."""

    def offered(name: str) -> Callable[[Any], Any]:
        return lambda row: row[name]

    return {name: offered(name) for name in columns}
