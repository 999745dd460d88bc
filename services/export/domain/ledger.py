"""What the Nordic side must hold, and the ledger operations that get it there.

The ledger is an append-only list of operations (upsert a record, delete a record), numbered in the
order they were decided; the sink applies each record's operations in that order. For the children a
consumed batch touched, `plan` compares what they should hold at the Nordic side (nothing at all for a
reserved child) with what the ledger already intends, and decides:
- operations still waiting (never claimed by the delivery worker) that are no longer wanted are
  cancelled, so a child reserved before their transfer went out is never transferred;
- a record that may have reached the sink and must not be there gets a delete: the retraction;
- a record whose content changed gets an upsert of its next revision.
"May have reached the sink" is decided conservatively: any upsert that was ever handed to the sink
(attempts > 0) counts unless a delete was confirmed after it, so a crash between sending and recording
never hides a transfer from a later retraction.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from services.export.domain.record import TransferRecord, canonical_json, content_sha256


class Operation(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


class Status(StrEnum):
    PENDING = "pending"  # decided, waiting for the delivery worker
    SENDING = "sending"  # claimed by the worker: it may or may not have reached the sink
    SENT = "sent"  # the sink confirmed it
    FAILED = "failed"  # the sink refused it too often; `registry export retry` re-drives it
    CANCELLED = "cancelled"  # superseded before it was sent


class Reason(StrEnum):
    TRANSFER = "transfer"  # a record the Nordic side does not have
    UPDATE = "update"  # a new revision of a record it has
    RESERVATION = "reservation"  # retraction: the family reserved
    OUT_OF_SCOPE = "out_of_scope"  # retraction: a correction took the tumour out of NOPHO-Care


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    record_id: str
    operation: Operation
    status: Status
    attempts: int
    record_sha256: str | None


@dataclass(frozen=True, slots=True)
class Wanted:
    """A record the Nordic side should hold, at its current revision."""

    record: TransferRecord
    payload: bytes  # its canonical JSON: what is sent and hashed
    sha256: str


@dataclass(frozen=True, slots=True)
class NewUpsert:
    record: TransferRecord
    payload: bytes
    sha256: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class NewDelete:
    record_id: str
    reason: Reason
    retracted_sha256: str  # the version that may be at the sink: what the audit log says was retracted


@dataclass(slots=True)
class Plan:
    cancel: list[int] = field(default_factory=list)
    upserts: list[NewUpsert] = field(default_factory=list)
    deletes: list[NewDelete] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.cancel or self.upserts or self.deletes)


@dataclass(frozen=True, slots=True)
class RevisionState:
    revision: int
    content_sha256: str


def assign_revisions(
    records: Mapping[str, TransferRecord], known: Mapping[str, RevisionState]
) -> tuple[dict[str, Wanted], dict[str, RevisionState]]:
    """Give each record its revision: unchanged content keeps it, changed content gets the next one.
    Returns the records as wanted and the revision states that changed."""
    wanted: dict[str, Wanted] = {}
    changed: dict[str, RevisionState] = {}
    for record_id, record in records.items():
        payload = canonical_json(record)
        # At revision 1 (as built) the record's bytes are its content's: one encoding serves both hashes.
        digest = hashlib.sha256(payload).hexdigest() if record.revision == 1 else content_sha256(record)
        state = known.get(record_id)
        if state is None or state.content_sha256 != digest:
            state = RevisionState((state.revision + 1) if state else 1, digest)
            changed[record_id] = state
        if state.revision == 1 == record.revision:
            wanted[record_id] = Wanted(record, payload, digest)
            continue
        final = record.model_copy(update={"revision": state.revision})
        payload = canonical_json(final)
        wanted[record_id] = Wanted(final, payload, hashlib.sha256(payload).hexdigest())
    return wanted, changed


def plan(wanted: Mapping[str, Wanted], ledger: Iterable[LedgerEntry], reserved: bool) -> Plan:
    """Operations for one child. `wanted` is empty for a reserved child; `ledger` is all of the child's
    entries (any status)."""
    by_record: dict[str, list[LedgerEntry]] = defaultdict(list)
    for entry in sorted(ledger, key=lambda e: e.id):
        by_record[entry.record_id].append(entry)
    result = Plan()
    for record_id in sorted(set(wanted) | set(by_record)):
        entries = by_record.get(record_id, [])
        want = wanted.get(record_id)
        intent = next((e for e in reversed(entries) if e.status is not Status.CANCELLED), None)
        if _holds(intent, want):
            continue
        result.cancel += [e.id for e in entries if e.status in (Status.PENDING, Status.FAILED)]
        present = maybe_present(entries)
        if want is not None:
            reason = Reason.UPDATE if present else Reason.TRANSFER
            result.upserts.append(NewUpsert(want.record, want.payload, want.sha256, reason))
        elif present is not None:
            reason = Reason.RESERVATION if reserved else Reason.OUT_OF_SCOPE
            result.deletes.append(NewDelete(record_id, reason, present))
    return result


def _holds(intent: LedgerEntry | None, want: Wanted | None) -> bool:
    if want is None:
        return intent is None or intent.operation is Operation.DELETE
    return intent is not None and intent.operation is Operation.UPSERT and intent.record_sha256 == want.sha256


def maybe_present(entries: Sequence[LedgerEntry]) -> str | None:
    """The hash of the version of a record that may be at the sink, from its entries in ledger order."""
    present: str | None = None
    for entry in entries:
        if entry.operation is Operation.UPSERT and entry.attempts > 0:
            present = entry.record_sha256
        elif entry.operation is Operation.DELETE and entry.status is Status.SENT:
            present = None
    return present


def coalesce(entries: Sequence[tuple[int, str]]) -> tuple[list[int], list[int]]:
    """Of waiting `(id, record_id)` operations in ledger order, the ones to send and the ones superseded.

    An upsert replaces the whole record and a delete removes it, so only the last operation of a record
    decides what the sink holds: the earlier ones need not be sent at all (a crashed delivery's upsert of
    a child reserved since is retracted without being sent again)."""
    last: dict[str, int] = {}
    for entry_id, record_id in entries:
        last[record_id] = entry_id
    keep = set(last.values())
    return [i for i, _ in entries if i in keep], [i for i, _ in entries if i not in keep]
