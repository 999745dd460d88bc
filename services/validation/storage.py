"""Validation's own database: the processed-message ids and, per child, the tumours it has accepted.

The tumours are what linkage needs (a treatment or follow-up form must name a known tumour of the child
at that hospital) and what the duplicate check compares a new diagnosis with. They change in the same
transaction that claims the message ids, so a redelivered batch neither repeats nor loses an update.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date

from sqlalchemy import Date, Integer, String, Uuid, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.validation.domain import KnownTumour
from shared.db import ProcessedMessageMixin


class Base(DeclarativeBase):
    pass


class ProcessedMessage(ProcessedMessageMixin, Base):
    pass


class Tumour(Base):
    __tablename__ = "tumours"

    child_pseudonym: Mapped[str] = mapped_column(String(52), primary_key=True)
    hospital_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tumour_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_group: Mapped[str] = mapped_column(String(3))
    histology_group: Mapped[int | None] = mapped_column(Integer)
    diagnosis_date: Mapped[date] = mapped_column(Date)
    submission_id: Mapped[uuid.UUID] = mapped_column(Uuid)


TumourKey = tuple[str, str, str]  # child pseudonym, hospital, tumour reference


class TumourLedger:
    """The tumours of a batch's children: read in one query, changed in memory while the batch is applied
    in order (so a treatment form sees the diagnosis just before it), written back in two statements."""

    def __init__(self, tumours: Iterable[tuple[str, KnownTumour]] = ()) -> None:
        self._by_child: dict[str, dict[tuple[str, str], KnownTumour]] = {}
        for child, tumour in tumours:
            self._by_child.setdefault(child, {})[tumour.hospital_id, tumour.tumour_ref] = tumour
        self._stored = {(child, *ref) for child, refs in self._by_child.items() for ref in refs}
        self._changed: set[TumourKey] = set()

    @classmethod
    async def load(cls, session: AsyncSession, children: Iterable[str]) -> TumourLedger:
        wanted = set(children)
        if not wanted:
            return cls()
        # Plain rows, not ORM objects: the ledger is the batch's working copy, the identity map adds nothing.
        rows = await session.execute(
            select(
                Tumour.child_pseudonym,
                Tumour.hospital_id,
                Tumour.tumour_ref,
                Tumour.site_group,
                Tumour.histology_group,
                Tumour.diagnosis_date,
                Tumour.submission_id,
            ).where(Tumour.child_pseudonym.in_(wanted))
        )
        return cls(
            (
                row.child_pseudonym,
                KnownTumour(
                    hospital_id=row.hospital_id,
                    tumour_ref=row.tumour_ref,
                    site_group=row.site_group,
                    histology_group=row.histology_group,
                    diagnosis_date=row.diagnosis_date,
                    submission_id=row.submission_id,
                ),
            )
            for row in rows
        )

    def of(self, child: str) -> list[KnownTumour]:
        return list(self._by_child.get(child, {}).values())

    def remember(self, child: str, tumour: KnownTumour) -> None:
        self._by_child.setdefault(child, {})[tumour.hospital_id, tumour.tumour_ref] = tumour
        self._changed.add((child, tumour.hospital_id, tumour.tumour_ref))

    async def save(self, session: AsyncSession) -> None:
        changed = sorted(self._changed)  # a stable order: concurrent writers lock rows alike
        new = [self._row(key) for key in changed if key not in self._stored]
        known = [self._row(key) for key in changed if key in self._stored]
        if new:
            await session.execute(insert(Tumour), new)
        if known:
            await session.execute(update(Tumour), known)  # bulk UPDATE by primary key
        self._stored |= self._changed
        self._changed.clear()

    def _row(self, key: TumourKey) -> dict[str, object]:
        tumour = self._by_child[key[0]][key[1], key[2]]
        return {
            "child_pseudonym": key[0],
            "hospital_id": tumour.hospital_id,
            "tumour_ref": tumour.tumour_ref,
            "site_group": tumour.site_group,
            "histology_group": tumour.histology_group,
            "diagnosis_date": tumour.diagnosis_date,
            "submission_id": tumour.submission_id,
        }
