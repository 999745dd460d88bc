"""The pure decision of what the Nordic side must hold and which ledger operations get it there."""

from __future__ import annotations

from datetime import date

from services.export.domain.ledger import (
    LedgerEntry,
    Operation,
    Reason,
    RevisionState,
    Status,
    Wanted,
    assign_revisions,
    coalesce,
    maybe_present,
    plan,
)
from services.export.domain.record import ExportIds, TransferRecord, build_records, content_sha256
from services.export.domain.sources import Source, record_key
from services.export.tests import factories as f

WHO = f.child(1, date(2015, 1, 1))


def record(diagnosed: date = date(2020, 1, 1)) -> TransferRecord:
    event = f.diagnosis(WHO, diagnosed)
    (built,) = build_records([Source(record_key(event), event)], ExportIds(f.KEY)).records.values()
    return built


def wanted(r: TransferRecord) -> dict[str, Wanted]:
    revised, _ = assign_revisions({r.record_id: r}, {})
    return revised


def entry(id_: int, r: TransferRecord, op: Operation, status: Status, attempts: int = 0) -> LedgerEntry:
    sha = wanted(r)[r.record_id].sha256
    return LedgerEntry(id_, r.record_id, op, status, attempts, sha)


R = record()
W = wanted(R)
SHA = W[R.record_id].sha256


def test_a_new_record_is_transferred() -> None:
    result = plan(W, [], reserved=False)
    assert [(u.record.record_id, u.reason) for u in result.upserts] == [(R.record_id, Reason.TRANSFER)]
    assert not result.cancel and not result.deletes


def test_nothing_to_do_when_the_ledger_already_intends_it() -> None:
    for status in (Status.PENDING, Status.SENDING, Status.SENT, Status.FAILED):
        assert not plan(W, [entry(1, R, Operation.UPSERT, status, attempts=1)], reserved=False)


def test_reservation_cancels_a_transfer_not_yet_sent_without_retraction() -> None:
    result = plan({}, [entry(1, R, Operation.UPSERT, Status.PENDING)], reserved=True)
    assert (result.cancel, result.upserts, result.deletes) == ([1], [], [])


def test_reservation_retracts_what_was_sent() -> None:
    result = plan({}, [entry(1, R, Operation.UPSERT, Status.SENT, 1)], reserved=True)
    assert [(d.record_id, d.reason, d.retracted_sha256) for d in result.deletes] == [
        (R.record_id, Reason.RESERVATION, SHA)
    ]


def test_reservation_retracts_what_may_be_in_flight_and_leaves_the_flight_alone() -> None:
    result = plan({}, [entry(1, R, Operation.UPSERT, Status.SENDING, 1)], reserved=True)
    assert result.cancel == []  # the worker may be sending it now: the delete follows it
    assert len(result.deletes) == 1


def test_an_attempted_transfer_that_failed_is_cancelled_and_still_retracted() -> None:
    result = plan({}, [entry(1, R, Operation.UPSERT, Status.FAILED, 3)], reserved=True)
    assert result.cancel == [1]
    assert len(result.deletes) == 1


def test_no_second_retraction_after_a_confirmed_one() -> None:
    ledger = [
        entry(1, R, Operation.UPSERT, Status.SENT, 1),
        entry(2, R, Operation.DELETE, Status.SENT, 1),
        entry(3, R, Operation.UPSERT, Status.PENDING),  # withdrawn, then reserved again before sending
    ]
    result = plan({}, ledger, reserved=True)
    assert (result.cancel, result.deletes) == ([3], [])


def test_an_unconfirmed_retraction_does_not_count_as_done() -> None:
    ledger = [entry(1, R, Operation.UPSERT, Status.SENT, 1), entry(2, R, Operation.DELETE, Status.PENDING, 1)]
    assert maybe_present(ledger) == SHA
    # Withdrawn again: the waiting delete is cancelled and the record is an update of what may be there.
    result = plan(W, ledger, reserved=False)
    assert result.cancel == [2]
    assert [u.reason for u in result.upserts] == [Reason.UPDATE]


def test_out_of_scope_retraction_reason() -> None:
    result = plan({}, [entry(1, R, Operation.UPSERT, Status.SENT, 1)], reserved=False)
    assert [d.reason for d in result.deletes] == [Reason.OUT_OF_SCOPE]


def test_a_new_revision_supersedes_a_waiting_one() -> None:
    newer = record(date(2020, 1, 9))
    revised, _ = assign_revisions({newer.record_id: newer}, {R.record_id: RevisionState(1, content_sha256(R))})
    result = plan(revised, [entry(1, R, Operation.UPSERT, Status.PENDING)], reserved=False)
    assert result.cancel == [1]
    assert [(u.record.revision, u.reason) for u in result.upserts] == [(2, Reason.TRANSFER)]


def test_revisions_follow_content_only() -> None:
    first, changed = assign_revisions({R.record_id: R}, {})
    assert first[R.record_id].record.revision == 1
    known = {R.record_id: changed[R.record_id]}
    same, unchanged = assign_revisions({R.record_id: R}, known)
    assert (same[R.record_id].record.revision, unchanged) == (1, {})
    newer = record(date(2020, 1, 9))
    bumped, _ = assign_revisions({newer.record_id: newer}, known)
    assert bumped[R.record_id].record.revision == 2


def test_coalesce_keeps_the_last_operation_of_each_record() -> None:
    send, superseded = coalesce([(1, "a"), (2, "b"), (3, "a"), (4, "a"), (5, "c")])
    assert (send, superseded) == ([2, 4, 5], [1, 3])
