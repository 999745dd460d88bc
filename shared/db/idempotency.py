"""Idempotent consumption: the ids of processed events are stored in the same transaction as their
effects, so a redelivered or replayed event is recognised and skipped, and an effect happens once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import String, Uuid, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from shared.db.bulk import insert_rows


class ProcessedMessageMixin:
    """Mix into a service's declarative base to get its `processed_messages` table."""

    @declared_attr.directive
    def __tablename__(cls) -> str:
        return "processed_messages"

    # One table for all of a service's subscriptions; the consumer name keeps them apart.
    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(server_default=func.now())


async def claim_new(
    session: AsyncSession, model: type[ProcessedMessageMixin], consumer: str, event_ids: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    """Record `event_ids` as processed by `consumer` and return those not seen before.

    Call inside the transaction that applies the effects: if it rolls back, so does the claim. One
    `INSERT ... ON CONFLICT DO NOTHING RETURNING` does the lookup and the insert in a single pass over the
    index; on PostgreSQL a concurrent claim of the same id waits for the other transaction and then
    returns the id only if that transaction rolled back, so exactly one consumer applies it.
    """
    wanted = set(event_ids)
    table = model.__table__  # type: ignore[attr-defined]
    rows = [{"consumer": consumer, "event_id": event_id} for event_id in wanted]
    return set(await insert_rows(session, table, rows, conflict=("consumer", "event_id"), returning=table.c.event_id))
