"""The consumer's use case and the delivery worker together, on SQLite and both real sinks: every order
of reports, reservations and withdrawals the issue names."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import date

import pytest
from sqlalchemy import select

from services.export import application
from services.export.application import ExportApplication
from services.export.delivery import DeliveryWorker
from services.export.sinks import SinkUnavailable
from services.export.storage import AuditEntry, LedgerOp
from services.export.tests.factories import (
    child,
    diagnosis,
    follow_up,
    reserved,
    treatment,
    withdrawn,
)
from services.export.tests.harness import Harness
from shared.events.forms import Modality

BORN = date(2015, 6, 15)
DIAGNOSED = date(2020, 3, 1)


async def audit(h: Harness) -> list[AuditEntry]:
    return await application.audit(h.sessions, limit=1000)


async def test_an_eligible_childs_reports_are_transferred_once(harness: Harness) -> None:
    kid = child(1, BORN)
    await harness.consume(diagnosis(kid, DIAGNOSED), treatment(kid, date(2020, 3, 5)), follow_up(kid, date(2021, 3, 1)))
    result = await harness.deliver()

    held = await harness.holdings()
    assert result.delivered == 3
    assert len(held) == 3
    assert {h.record["child_id"] for h in held.values()} == {harness.ids.child(kid.pseudonym)}
    assert sorted(h.record["content"]["kind"] for h in held.values()) == ["diagnosis", "follow_up", "treatment"]
    entries = await audit(harness)
    assert [(e.action, e.reason, e.legal_basis) for e in entries] == [("transfer", "transfer", "NOPHO-Care")] * 3
    assert {e.record_sha256 for e in entries} == {h.record_sha256 for h in held.values()}
    counts = await application.status(harness.sessions)
    assert (counts.pending, counts.sent, counts.retracted, counts.failed) == (0, 3, 0, 0)


async def test_a_child_reserved_before_any_report_is_never_transferred(harness: Harness) -> None:
    kid = child(2, BORN)
    await harness.consume(reserved(kid))
    await harness.consume(diagnosis(kid, DIAGNOSED), treatment(kid, date(2020, 3, 5)))
    await harness.deliver()

    assert await harness.holdings() == {}
    assert harness.sink.delivered == []
    async with harness.sessions() as session:
        assert list(await session.scalars(select(LedgerOp))) == []
    assert (await application.status(harness.sessions)).reserved_children == 1


async def test_a_reservation_before_delivery_cancels_the_transfer(harness: Harness) -> None:
    kid = child(3, BORN)
    await harness.consume(diagnosis(kid, DIAGNOSED))
    await harness.consume(reserved(kid))  # the transfer is queued but not sent yet
    await harness.deliver()

    assert harness.sink.delivered == []
    assert await audit(harness) == []
    counts = await application.status(harness.sessions)
    assert (counts.pending, counts.sent, counts.retracted, counts.cancelled) == (0, 0, 0, 1)


async def test_a_reservation_after_transfer_retracts_everything_and_is_recorded(harness: Harness) -> None:
    kid, other = child(4, BORN), child(5, BORN)
    await harness.consume(diagnosis(kid, DIAGNOSED), treatment(kid, date(2020, 3, 5)), diagnosis(other, DIAGNOSED))
    await harness.deliver()
    await harness.consume(reserved(kid))
    await harness.deliver()

    held = await harness.holdings()
    assert {h.record["child_id"] for h in held.values()} == {harness.ids.child(other.pseudonym)}
    retractions = [e for e in await audit(harness) if e.action == "retraction"]
    assert len(retractions) == 2
    assert {e.reason for e in retractions} == {"reservation"}
    assert {e.child_id for e in retractions} == {harness.ids.child(kid.pseudonym)}
    assert (await application.status(harness.sessions)).retracted == 2


async def test_withdrawal_transfers_again_and_re_reservation_retracts_again(harness: Harness) -> None:
    kid = child(6, BORN)
    await harness.consume(diagnosis(kid, DIAGNOSED), reserved(kid))
    await harness.deliver()
    assert await harness.holdings() == {}

    await harness.consume(withdrawn(kid))
    await harness.deliver()
    held = await harness.holdings()
    assert len(held) == 1
    (record,) = held.values()
    assert record.record["revision"] == 1

    await harness.consume(reserved(kid))
    await harness.deliver()
    assert await harness.holdings() == {}
    await harness.consume(withdrawn(kid))
    await harness.deliver()
    again = await harness.holdings()
    assert again.keys() == held.keys()  # the same record id: the Nordic side links it
    assert [e.action for e in await audit(harness)] == ["transfer", "retraction", "transfer"]


async def test_treatment_before_its_diagnosis_is_held_then_follows_it(harness: Harness) -> None:
    kid = child(7, BORN)
    await harness.consume(treatment(kid, date(2020, 3, 5)))
    await harness.deliver()
    assert await harness.holdings() == {}
    assert (await application.status(harness.sessions)).held_reports == 1

    await harness.consume(diagnosis(kid, DIAGNOSED))
    await harness.deliver()
    held = await harness.holdings()
    assert sorted(h.record["content"]["kind"] for h in held.values()) == ["diagnosis", "treatment"]
    (therapy,) = [h.record for h in held.values() if h.record["content"]["kind"] == "treatment"]
    assert therapy["content"]["start_day"] == 4
    assert (await application.status(harness.sessions)).held_reports == 0


async def test_a_correction_updates_the_same_record_and_what_depends_on_it(harness: Harness) -> None:
    kid = child(8, BORN)
    await harness.consume(diagnosis(kid, DIAGNOSED), treatment(kid, date(2020, 3, 5)))
    await harness.deliver()
    before = await harness.holdings()

    await harness.consume(diagnosis(kid, date(2020, 2, 20), morphology="9837"))  # corrected date and histology
    await harness.deliver()
    after = await harness.holdings()

    assert after.keys() == before.keys()
    by_kind = {h.record["content"]["kind"]: h.record for h in after.values()}
    assert by_kind["diagnosis"]["revision"] == 2
    assert by_kind["diagnosis"]["content"]["morphology"] == "9837"
    assert by_kind["treatment"]["revision"] == 2  # its days since diagnosis changed with the date
    assert by_kind["treatment"]["content"]["start_day"] == 14
    assert [e.action for e in await audit(harness)].count("update") == 2


async def test_each_treatment_and_follow_up_report_of_a_tumour_is_a_record_of_its_own(harness: Harness) -> None:
    kid = child(15, BORN)
    chemotherapy = treatment(kid, date(2020, 3, 5))
    surgery = treatment(kid, date(2020, 5, 4), modality=Modality.SURGERY, protocol="SIOP")
    follow_ups = [follow_up(kid, date(2021, 3, 1)), follow_up(kid, date(2023, 3, 1))]
    await harness.consume(diagnosis(kid, DIAGNOSED), chemotherapy, surgery, *follow_ups)
    await harness.deliver()

    held = await harness.holdings()
    assert len(held) == 5
    therapies = sorted((h.record["content"]["modality"], h.record["content"]["start_day"]) for h in held.values()
                       if h.record["content"]["kind"] == "treatment")  # fmt: skip
    assert therapies == [("chemotherapy", 4), ("surgery", 64)]
    contacts = sorted(h.record["content"]["last_contact_day"] for h in held.values()
                      if h.record["content"]["kind"] == "follow_up")  # fmt: skip
    assert contacts == [365, 1095]
    assert len({h.record["tumour_id"] for h in held.values()}) == 1


async def test_a_correction_of_one_treatment_updates_that_record_only(harness: Harness) -> None:
    kid = child(16, BORN)
    chemotherapy = treatment(kid, date(2020, 3, 5))
    surgery = treatment(kid, date(2020, 5, 4), modality=Modality.SURGERY, protocol="SIOP")
    await harness.consume(diagnosis(kid, DIAGNOSED), chemotherapy, surgery)
    await harness.deliver()
    before = await harness.holdings()

    corrected = treatment(kid, date(2020, 3, 3), corrects=chemotherapy)  # the start typed two days late
    await harness.consume(corrected, treatment(kid, date(2020, 3, 2), corrects=corrected))
    await harness.deliver()
    after = await harness.holdings()

    assert after.keys() == before.keys()
    changed = {rid for rid in after if after[rid].record != before[rid].record}
    assert len(changed) == 1
    (record,) = (after[rid].record for rid in changed)
    assert (record["content"]["modality"], record["content"]["start_day"], record["revision"]) == ("chemotherapy", 1, 2)
    assert [e.action for e in await audit(harness)].count("update") == 1


async def test_a_correction_out_of_scope_retracts_the_tumour(harness: Harness) -> None:
    kid = child(9, date(2012, 1, 1))
    await harness.consume(diagnosis(kid, date(2019, 1, 1)), follow_up(kid, date(2020, 1, 1)))
    await harness.deliver()
    assert len(await harness.holdings()) == 2

    await harness.consume(diagnosis(kid, date(2018, 12, 31)))
    await harness.deliver()
    assert await harness.holdings() == {}
    assert {e.reason for e in await audit(harness) if e.action == "retraction"} == {"out_of_scope"}


async def test_redelivered_events_change_nothing(sql_harness: Harness) -> None:
    kid = child(10, BORN)
    events = [diagnosis(kid, DIAGNOSED), reserved(kid), withdrawn(kid)]
    await sql_harness.consume(*events)
    await sql_harness.deliver()
    async with sql_harness.sessions() as session:
        ledger_before = len(list(await session.scalars(select(LedgerOp))))
    await sql_harness.consume(*events, *events)
    await sql_harness.consume(events[1])  # a redelivered reservation must not reserve again
    await sql_harness.deliver()
    async with sql_harness.sessions() as session:
        assert len(list(await session.scalars(select(LedgerOp)))) == ledger_before
    assert len(await sql_harness.holdings()) == 1


async def test_children_outside_nopho_care_are_not_transferred(sql_harness: Harness) -> None:
    adult = child(11, date(2002, 2, 10))
    early = child(12, date(2015, 1, 1))
    await sql_harness.consume(diagnosis(adult, date(2020, 2, 10)), diagnosis(early, date(2018, 12, 31)))
    await sql_harness.deliver()
    assert await sql_harness.holdings() == {}


async def test_refused_transfers_fail_without_holding_up_others_and_retry_redrives_them(sql_harness: Harness) -> None:
    first, second = child(13, BORN), child(14, BORN)
    await sql_harness.consume(diagnosis(first, DIAGNOSED), diagnosis(second, DIAGNOSED))
    refused = sql_harness.ids.record(f"{first.pseudonym}/ous/T1/diagnosis")
    original = sql_harness.sink.inner.deliver

    async def refuse_first(operations):  # type: ignore[no-untyped-def]
        if any(op.record_id == refused for op in operations):
            raise ValueError("value too long for the Nordic column")
        return await original(operations)

    sql_harness.sink.inner.deliver = refuse_first  # type: ignore[method-assign]
    for _ in range(sql_harness.max_failures):
        await sql_harness.deliver()
    counts = await application.status(sql_harness.sessions)
    assert (counts.sent, counts.failed, counts.pending) == (1, 1, 0)
    # A failed operation holds back the rest of its child, so its order holds.
    await sql_harness.consume(follow_up(first, date(2021, 1, 1)))
    await sql_harness.deliver()
    assert (await application.status(sql_harness.sessions)).pending == 1

    sql_harness.sink.inner.deliver = original  # type: ignore[method-assign]
    assert await application.retry_failed(sql_harness.sessions) == 1
    await sql_harness.deliver()
    counts = await application.status(sql_harness.sessions)
    assert (counts.sent, counts.failed, counts.pending) == (3, 0, 0)
    assert len(await sql_harness.holdings()) == 3


async def test_an_unavailable_sink_delays_without_failing(sql_harness: Harness) -> None:
    await sql_harness.consume(diagnosis(child(15, BORN), DIAGNOSED))
    original = sql_harness.sink.inner.deliver

    async def down(operations):  # type: ignore[no-untyped-def]
        raise SinkUnavailable("connection refused")

    sql_harness.sink.inner.deliver = down  # type: ignore[method-assign]
    for _ in range(5):
        assert (await sql_harness.deliver()).unavailable
    counts = await application.status(sql_harness.sessions)
    assert (counts.pending, counts.failed) == (1, 0)
    sql_harness.sink.inner.deliver = original  # type: ignore[method-assign]
    assert (await sql_harness.deliver()).delivered == 1


async def test_one_instance_delivers_at_a_time(sql_harness: Harness) -> None:
    await sql_harness.consume(diagnosis(child(16, BORN), DIAGNOSED))
    assert (await sql_harness.deliver()).leased
    other = DeliveryWorker(sql_harness.transactions, sql_harness.sink, owner="another-instance")
    assert not (await other.deliver_once()).leased
    await sql_harness.worker.release()
    assert (await other.deliver_once()).leased


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"])
async def test_the_audit_log_is_append_only(sql_harness: Harness, statement: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    await sql_harness.consume(diagnosis(child(17, BORN), DIAGNOSED))
    await sql_harness.deliver()
    with pytest.raises(IntegrityError, match="append-only"):
        async with sql_harness.sessions.begin() as session:
            await session.execute(text(statement))


async def _until(check: Callable[[], Awaitable[bool]], within_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.01)


async def test_continuous_delivery_is_woken_by_the_consumer(sql_harness: Harness) -> None:
    sql_harness.application = ExportApplication(
        sql_harness.transactions, sql_harness.ids, on_queued=sql_harness.worker.wake
    )
    running = asyncio.create_task(sql_harness.worker.run(interval_s=None, poll_s=60))  # polling would be too late
    try:
        await asyncio.sleep(0.05)
        await sql_harness.consume(diagnosis(child(18, BORN), DIAGNOSED))

        async def delivered() -> bool:
            return len(await sql_harness.holdings()) == 1

        await _until(delivered)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_scheduled_delivery_sends_in_batches_on_its_interval(sql_harness: Harness) -> None:
    await sql_harness.consume(diagnosis(child(19, BORN), DIAGNOSED), diagnosis(child(20, BORN), DIAGNOSED))
    running = asyncio.create_task(sql_harness.worker.run(interval_s=0.1, poll_s=60))
    try:

        async def delivered() -> bool:
            return len(await sql_harness.holdings()) == 2

        await _until(delivered)
        assert {e.batch for e in await audit(sql_harness)} == {"sql:1-2"}  # one batch
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
