"""`registry export status | retry | deliver | public-key` against a real export database."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from deploy.cli import app
from services.export.sinks.filedrop import key_id, signing_key
from services.export.tests.factories import child, diagnosis
from services.export.tests.harness import Harness
from shared.settings import key_bytes

runner = CliRunner()
SIGNING_KEY = "s" * 43


@pytest.fixture
async def failed_once(tmp_path: Path, export_template: Path) -> Harness:
    """Two children transferred, a third refused by the sink and failed."""
    h = Harness(tmp_path, export_template, "sql", max_failures=1)
    await h.consume(diagnosis(child(300, date(2015, 1, 1)), date(2020, 1, 1)))
    await h.consume(diagnosis(child(301, date(2015, 1, 1)), date(2020, 1, 1)))
    await h.deliver()
    await h.consume(diagnosis(child(302, date(2015, 1, 1)), date(2020, 1, 1)))
    h.sink.fault = "refuse"
    await h.deliver()
    await h.worker.release()  # the service stopped
    await h.close()
    return h


@pytest.fixture
def env(failed_once: Harness, monkeypatch: pytest.MonkeyPatch) -> Harness:
    for name in ("DATABASE_URL", "EXPORT_PSEUDONYM_KEY", "EXPORT_SIGNING_KEY", "EXPORT_SINK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EXPORT_DATABASE_URL", failed_once.export_url)
    monkeypatch.setenv("EXPORT_SINK_DATABASE_URL", failed_once.nordic_url)
    return failed_once


def test_status_needs_no_keys(env: Harness) -> None:
    result = runner.invoke(app, ["export", "status", "--json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert (counts["pending"], counts["sent"], counts["retracted"], counts["failed"]) == (0, 2, 0, 1)
    [failure] = counts["failures"]
    assert (failure["operation"], failure["failures"]) == ("upsert", 1)
    assert "the sink refused the batch" in failure["last_error"]
    table = runner.invoke(app, ["export", "status"])
    assert "Failed operations" in table.output


def test_retry_then_deliver(env: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    retried = runner.invoke(app, ["export", "retry"])
    assert retried.exit_code == 0, retried.output
    assert "re-queued 1" in retried.output
    assert json.loads(runner.invoke(app, ["export", "status", "--json"]).output)["pending"] == 1

    refused = runner.invoke(app, ["export", "deliver"])
    assert refused.exit_code == 2
    assert "EXPORT_PSEUDONYM_KEY" in refused.output

    monkeypatch.setenv("EXPORT_PSEUDONYM_KEY", "k" * 43)
    delivered = runner.invoke(app, ["export", "deliver"])
    assert delivered.exit_code == 0, delivered.output
    assert "delivered 1 operation(s)" in delivered.output
    counts = json.loads(runner.invoke(app, ["export", "status", "--json"]).output)
    assert (counts["pending"], counts["sent"], counts["failed"]) == (0, 3, 0)


def test_public_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORT_PSEUDONYM_KEY", "k" * 43)
    monkeypatch.setenv("EXPORT_SIGNING_KEY", SIGNING_KEY)
    result = runner.invoke(app, ["export", "public-key"])
    assert result.exit_code == 0, result.output
    assert "BEGIN PUBLIC KEY" in result.output
    expected = signing_key(key_bytes(SecretStr(SIGNING_KEY))).public_key()
    assert key_id(expected) in result.output
