"""Both sinks on real storage: idempotent by sequence, atomic, and (file drop) signed and checksummed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from services.export.domain.ledger import Operation
from services.export.domain.record import canonical_json
from services.export.sinks import FileDropSink, SinkOperation, SinkUnavailable, SqlSink
from services.export.sinks.filedrop import DropError, read_drop, signing_key
from services.export.tests.harness import SIGNING
from services.export.tests.test_ledger import R


def upsert(sequence: int, revision: int = 1, record_id: str = R.record_id) -> SinkOperation:
    record = R.model_copy(update={"revision": revision, "record_id": record_id})
    data = canonical_json(record)
    return SinkOperation(sequence, record_id, Operation.UPSERT, data, hashlib.sha256(data).hexdigest())


def delete(sequence: int, record_id: str = R.record_id) -> SinkOperation:
    return SinkOperation(sequence, record_id, Operation.DELETE, None, None)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def _sql_semantics(sink: SqlSink) -> None:
    try:
        await sink.deliver([upsert(5, revision=2)])
        await sink.deliver([upsert(5, revision=2)])  # re-sent after a crash: nothing changes
        await sink.deliver([upsert(3, revision=1)])  # an older operation never overwrites a newer one
        held = await sink.holdings()
        assert [(h.sequence, h.record["revision"]) for h in held.values()] == [(5, 2)]
        await sink.deliver([delete(4)])  # an older delete does not remove a newer record
        assert len(await sink.holdings()) == 1
        await sink.deliver([delete(7), upsert(8, record_id="b" * 32)])
        assert list(await sink.holdings()) == ["b" * 32]
        await sink.deliver([delete(7)])
        assert list(await sink.holdings()) == ["b" * 32]
    finally:
        await sink.close()


async def test_sql_sink_on_sqlite(tmp_path: Path) -> None:
    await _sql_semantics(SqlSink(f"sqlite+aiosqlite:///{tmp_path / 'nordic.db'}"))


@pytest.mark.postgres
async def test_sql_sink_on_postgres(postgres_url: str) -> None:
    await _sql_semantics(SqlSink(postgres_url))


async def test_sql_sink_reports_an_unreachable_database_as_unavailable() -> None:
    sink = SqlSink("postgresql+asyncpg://nobody@127.0.0.1:9/nordic")  # the discard port: nothing listens
    with pytest.raises(SinkUnavailable):
        await sink.deliver([upsert(1)])
    await sink.close()


async def test_file_drop_batches_are_signed_checksummed_and_importable(tmp_path: Path) -> None:
    sink = FileDropSink(tmp_path, SIGNING)
    batch = await sink.deliver([upsert(1), upsert(2, record_id="b" * 32), delete(3, record_id="b" * 32)])
    assert listing(tmp_path) == [f"{batch}.jsonl", f"{batch}.manifest.json"]
    data = (tmp_path / f"{batch}.jsonl").read_bytes()
    assert batch == f"batch-{hashlib.sha256(data).hexdigest()}"  # named by its content hash
    manifest = json.loads((tmp_path / f"{batch}.manifest.json").read_text())
    assert manifest["signature"]["algorithm"] == "ed25519"
    assert [op["sequence"] for op in manifest["operations"]] == [1, 2, 3]

    drop = read_drop(tmp_path, SIGNING.public_key())
    assert list(drop.records) == [R.record_id]
    assert (drop.batches, drop.operations, drop.duplicates) == (1, 3, [])


async def test_file_drop_writes_nothing_twice(tmp_path: Path) -> None:
    sink = FileDropSink(tmp_path, SIGNING)
    first = await sink.deliver([upsert(1), upsert(2, record_id="b" * 32)])
    # A new process re-sends them with one more: only the new one is written.
    again = FileDropSink(tmp_path, SIGNING)
    assert await again.deliver([upsert(1)]) == first
    second = await again.deliver([upsert(1), upsert(2, record_id="b" * 32), upsert(4, revision=2)])
    assert second != first
    drop = read_drop(tmp_path, SIGNING.public_key())
    assert (drop.batches, drop.operations, drop.duplicates) == (2, 3, [])
    assert drop.records[R.record_id].record["revision"] == 2


async def test_file_drop_clears_crash_leftovers_on_start(tmp_path: Path) -> None:
    await FileDropSink(tmp_path, SIGNING).deliver([upsert(1)])
    (tmp_path / ".tmp-0123").write_bytes(b"half a file")
    (tmp_path / "batch-deadbeef.jsonl").write_bytes(b"{}\n")  # its manifest was never written
    await FileDropSink(tmp_path, SIGNING).deliver([upsert(2)])
    assert not (tmp_path / ".tmp-0123").exists()
    assert not (tmp_path / "batch-deadbeef.jsonl").exists()
    assert read_drop(tmp_path, SIGNING.public_key()).batches == 2


@pytest.mark.parametrize("tamper", ["data", "manifest", "key"])
async def test_the_importer_refuses_a_tampered_batch(tmp_path: Path, tamper: str) -> None:
    batch = await FileDropSink(tmp_path, SIGNING).deliver([upsert(1)])
    key = SIGNING.public_key()
    if tamper == "data":
        path = tmp_path / f"{batch}.jsonl"
        path.write_bytes(path.read_bytes().replace(b'"revision":1', b'"revision":7'))
    elif tamper == "manifest":
        path = tmp_path / f"{batch}.manifest.json"
        manifest = json.loads(path.read_text())
        manifest["operations"][0]["sequence"] = 99
        path.write_text(json.dumps(manifest))
    else:
        key = signing_key(b"someone-else".ljust(32, b"x")).public_key()
    with pytest.raises(DropError):
        read_drop(tmp_path, key)


async def test_file_drop_reports_an_unwritable_directory_as_unavailable(tmp_path: Path) -> None:
    (tmp_path / "not-a-directory").write_text("")
    sink = FileDropSink(tmp_path / "not-a-directory" / "drop", SIGNING)
    with pytest.raises(SinkUnavailable):
        await sink.deliver([upsert(1)])
