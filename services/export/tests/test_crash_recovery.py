"""Kill the delivery between the ledger's claim and the sink's write, and between the sink's write and
the ledger's commit; a new process then leaves the sink holding each record once, in its latest version."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from services.export import application
from services.export.domain.ledger import Operation
from services.export.sinks.filedrop import read_drop
from services.export.storage import LedgerOp
from services.export.tests.factories import child, diagnosis, reserved, treatment
from services.export.tests.harness import SIGNING, Crash, Harness

BORN = date(2016, 1, 1)


async def _assert_each_once(h: Harness) -> None:
    """The sink holds exactly the ledger's latest upserts, and (file drop) no operation twice at rest."""
    async with h.sessions() as session:
        rows = list(await session.scalars(select(LedgerOp).order_by(LedgerOp.id)))
    latest: dict[str, LedgerOp] = {}
    for row in rows:
        if row.status != "cancelled":
            latest[row.record_id] = row
    expected = {r: row.record_sha256 for r, row in latest.items() if row.operation == Operation.UPSERT.value}
    held = await h.holdings()
    assert {r: x.record_sha256 for r, x in held.items()} == expected
    if h.sink_kind == "file":
        assert read_drop(h.directory / "drop", SIGNING.public_key()).duplicates == []
    counts = await application.status(h.sessions)
    assert counts.pending == 0


@pytest.mark.parametrize("moment", ["before", "after"])
async def test_a_crash_during_delivery_is_recovered_by_the_next_process(harness: Harness, moment: str) -> None:
    kid = child(100, BORN)
    await harness.consume(diagnosis(kid, date(2020, 1, 1)), treatment(kid, date(2020, 1, 2)))
    harness.sink.fault = moment  # type: ignore[assignment]
    with pytest.raises(Crash):
        await harness.deliver()

    await harness.restart()
    result = await harness.deliver()

    assert result.delivered == 2
    await _assert_each_once(harness)
    # Each operation is audited once, whether its first delivery reached the sink or not.
    assert len(await application.audit(harness.sessions)) == 2


async def test_the_file_drop_writes_nothing_twice_after_a_crash_after_its_write(
    tmp_path: Path, export_template: Path
) -> None:
    h = Harness(tmp_path, export_template, "file")
    try:
        kid = child(101, BORN)
        await h.consume(diagnosis(kid, date(2020, 1, 1)))
        h.sink.fault = "after"
        with pytest.raises(Crash):
            await h.deliver()
        await h.restart()
        await h.deliver()
        drop = read_drop(h.directory / "drop", SIGNING.public_key())
        assert (drop.batches, drop.operations, drop.duplicates) == (1, 1, [])
    finally:
        await h.close()


async def test_a_reservation_during_a_crashed_delivery_retracts_without_sending_the_record_again(
    harness: Harness,
) -> None:
    kid = child(102, BORN)
    await harness.consume(diagnosis(kid, date(2020, 1, 1)))
    harness.sink.fault = "after"  # the record reached the sink; the ledger does not know it
    with pytest.raises(Crash):
        await harness.deliver()
    await harness.restart()
    await harness.consume(reserved(kid))
    await harness.deliver()

    assert await harness.holdings() == {}
    assert [op.operation for op in harness.sink.delivered] == [Operation.DELETE]  # the upsert is not sent again
    actions = [e.action for e in await application.audit(harness.sessions)]
    assert actions == ["retraction"]


async def test_a_reservation_after_a_crash_before_the_write_still_retracts(harness: Harness) -> None:
    kid = child(103, BORN)
    await harness.consume(diagnosis(kid, date(2020, 1, 1)))
    harness.sink.fault = "before"  # claimed: it may have reached the sink as far as the ledger knows
    with pytest.raises(Crash):
        await harness.deliver()
    await harness.restart()
    await harness.consume(reserved(kid))
    await harness.deliver()
    assert await harness.holdings() == {}
    await _assert_each_once(harness)


async def test_a_correction_during_a_crashed_delivery_sends_only_the_latest_version(harness: Harness) -> None:
    kid = child(104, BORN)
    await harness.consume(diagnosis(kid, date(2020, 1, 1)))
    harness.sink.fault = "before"
    with pytest.raises(Crash):
        await harness.deliver()
    await harness.restart()
    await harness.consume(diagnosis(kid, date(2020, 1, 15)))
    await harness.deliver()

    (held,) = (await harness.holdings()).values()
    assert held.record["revision"] == 2
    assert len(harness.sink.delivered) == 1
    await _assert_each_once(harness)
