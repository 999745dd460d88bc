"""What registering a batch of submissions needs from the database, read in three queries up front.

`Intake._register` checks, per submission, whether its id is taken, the tumour's earlier submissions
(supersession, a tumour reference of another child) and whether the child is in the vault. Asked one
submission at a time that is three round trips each; for a batch (a group commit of HTTP requests, a
batch of the inbound topic) `Known.load` asks once for all of them, and `add` keeps the answers current
as the batch registers submissions, so a later one in the same batch sees the earlier ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.storage import Submission, VaultEntry
from shared.events.submissions import HospitalSubmission

_CHUNK = 1000  # keys per IN list


@dataclass
class Known:
    submissions: dict[uuid.UUID, Submission | None] = field(default_factory=dict)
    histories: dict[tuple[str, str], list[Submission]] = field(default_factory=dict)
    vault: set[str] = field(default_factory=set)

    @classmethod
    async def load(cls, session: AsyncSession, batch: Iterable[tuple[HospitalSubmission, str]]) -> Known:
        """`batch`: each submission with its child's pseudonym."""
        ids: set[uuid.UUID] = set()
        tumours: set[tuple[str, str]] = set()
        children: set[str] = set()
        for submission, pseudonym in batch:
            ids.add(submission.submission_id)
            tumours.add((submission.hospital_id, submission.form.tumour_ref))
            children.add(pseudonym)
        known = cls({submission_id: None for submission_id in ids}, {tumour: [] for tumour in tumours})
        for chunk in _chunks(ids):
            for row in await session.scalars(select(Submission).where(Submission.submission_id.in_(chunk))):
                known.submissions[row.submission_id] = row
        for chunk in _chunks(tumours):
            rows = await session.scalars(
                select(Submission)
                .where(tuple_(Submission.hospital_id, Submission.tumour_ref).in_(chunk))
                .order_by(Submission.received_at, Submission.submission_id)
            )
            for row in rows:
                known.histories[row.hospital_id, row.tumour_ref].append(row)
        for chunk in _chunks(children):
            known.vault.update(
                await session.scalars(select(VaultEntry.pseudonym).where(VaultEntry.pseudonym.in_(chunk)))
            )
        return known

    @staticmethod
    async def load_submissions(session: AsyncSession, ids: Iterable[uuid.UUID]) -> list[Submission]:
        """The submissions with these ids, loaded into the session (its identity map answers `get`)."""
        rows: list[Submission] = []
        for chunk in _chunks(ids):
            rows += await session.scalars(select(Submission).where(Submission.submission_id.in_(chunk)))
        return rows

    def has_submission(self, submission_id: uuid.UUID) -> bool:
        return submission_id in self.submissions

    def has_history(self, hospital_id: str, tumour_ref: str) -> bool:
        return (hospital_id, tumour_ref) in self.histories

    def add(self, row: Submission) -> None:
        """A submission registered in this batch."""
        self.submissions[row.submission_id] = row
        history = self.histories.setdefault((row.hospital_id, row.tumour_ref), [])
        history.append(row)
        history.sort(key=lambda h: (h.received_at, h.submission_id))
        self.vault.add(row.child_pseudonym)


def _chunks(keys: Iterable[object]) -> Iterable[list[object]]:
    items = list(keys)
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
