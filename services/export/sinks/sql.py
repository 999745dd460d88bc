"""The SQL-database sink: a separate database standing for the Nordic one (SQLite or PostgreSQL).

One row per transfer record, keyed by its record id. An upsert only overwrites an older sequence and a
delete only removes an older one, so re-sending after a crash changes nothing; a batch is one
transaction. The table is the Nordic side's, so the sink creates it if missing rather than migrating it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, Text, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from services.export.domain.ledger import Operation
from services.export.sinks.base import Held, SinkOperation, SinkUnavailable
from shared.db import create_engine

NORDIC = MetaData()
RECORDS = Table(
    "nopho_care_records",
    NORDIC,
    Column("record_id", String(32), primary_key=True),
    Column("child_id", String(32), nullable=False, index=True),
    Column("tumour_id", String(32), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("form_type", String(16), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("record", Text, nullable=False),
    Column("record_sha256", String(64), nullable=False),
    Column("transferred_at", DateTime(timezone=True), nullable=False),
)


class SqlSink:
    name = "sql"

    def __init__(self, url: str) -> None:
        # Errors name the statement, never the values: they end up in logs and the ledger's last_error.
        self._engine = create_engine(url, hide_parameters=True)
        self._insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        self._ready = False
        self._creating = asyncio.Lock()

    async def deliver(self, operations: Sequence[SinkOperation]) -> str:
        now = datetime.now(UTC)
        upserts = [
            {
                "record_id": op.record_id,
                "child_id": (record := op.record_json())["child_id"],
                "tumour_id": record["tumour_id"],
                "schema_version": record["schema_version"],
                "form_type": record["content"]["kind"],
                "revision": record["revision"],
                "sequence": op.sequence,
                "record": op.record.decode() if op.record else "",
                "record_sha256": op.record_sha256,
                "transferred_at": now,
            }
            for op in operations
            if op.operation is Operation.UPSERT
        ]
        deletes = [{"rid": op.record_id, "seq": op.sequence} for op in operations if op.operation is Operation.DELETE]
        try:
            await self._ensure_table()
            async with self._engine.begin() as connection:
                if upserts:
                    statement = self._insert(RECORDS)
                    excluded = statement.excluded
                    await connection.execute(
                        statement.on_conflict_do_update(
                            index_elements=[RECORDS.c.record_id],
                            set_={c.name: excluded[c.name] for c in RECORDS.c if c.name != "record_id"},
                            where=RECORDS.c.sequence < excluded.sequence,
                        ),
                        upserts,
                    )
                if deletes:
                    await connection.execute(
                        delete(RECORDS).where(
                            RECORDS.c.record_id == bindparam("rid"), RECORDS.c.sequence < bindparam("seq")
                        ),
                        deletes,
                    )
        except (OperationalError, InterfaceError, OSError, TimeoutError) as exc:
            raise SinkUnavailable(str(exc)) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise SinkUnavailable(str(exc)) from exc
            raise
        sequences = [op.sequence for op in operations]
        return f"sql:{min(sequences)}-{max(sequences)}"

    async def holdings(self) -> dict[str, Held]:
        await self._ensure_table()
        async with self._engine.connect() as connection:
            rows = await connection.execute(select(RECORDS))
            return {
                row.record_id: Held(row.record_id, row.sequence, json.loads(row.record), row.record_sha256)
                for row in rows
            }

    async def close(self) -> None:
        await self._engine.dispose()

    async def _ensure_table(self) -> None:
        async with self._creating:
            if not self._ready:
                async with self._engine.begin() as connection:
                    await connection.run_sync(NORDIC.create_all)
                self._ready = True
