"""One submission through the real platform: four service processes, a real broker, every hop observed.

A hospital posts a diagnosis to intake; validation codes and accepts it; intake turns the outcome into
the hospital's receipt; stats counts it; export transfers it to the Nordic sink. Then a reservation for
the same child makes export retract it. Each service runs as its own process, exactly as `registry up`
starts them, on SQLite files in a temporary directory.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from deploy.local.platform import LocalPlatform
from deploy.synthetic.identity import synthetic_number
from services.export.sinks.sql import RECORDS
from tests.fixtures.forms import diagnosis_submission
from tests.fixtures.platform import running_platform

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def platform(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    with running_platform(
        tmp_path_factory.mktemp("platform"),
        kafka_bootstrap,
        topic_prefix="e2e",
        extra_env={"STATS_SNAPSHOT_INTERVAL_S": "0.2", "EXPORT_POLL_INTERVAL_S": "0.5", "LOG_JSON": "true"},
    ) as platform:
        yield platform


def eventually(probe: Callable[[], Any], within: float = 60.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"not reached within {within} s"
        time.sleep(0.2)


def test_a_submission_travels_the_whole_flow_and_a_reservation_retracts_it(platform: LocalPlatform) -> None:
    tokens = platform.demo_tokens()
    hospital = {"Authorization": f"Bearer {tokens['ous']}"}
    staff = {"Authorization": f"Bearer {tokens['staff']}"}
    intake, stats, export = (platform.service(n).url for n in ("intake", "stats", "export"))
    national_id = synthetic_number(date(2016, 5, 17), male=True, individual=501)
    assert national_id is not None
    diagnosed = date.today() - timedelta(days=20)
    submission_id = str(uuid.uuid4())
    body = diagnosis_submission(
        "ous", national_id, "E2E-1", diagnosed=diagnosed, sex="male", submission_id=submission_id,
        laterality="not_paired",
    )  # fmt: skip

    # 1. intake: durable and acknowledged.
    response = httpx.post(f"{intake}/v1/submissions", json=body, headers=hospital)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "received"

    # 2-3. validation accepts it (medulloblastoma, ICCC-3 IIIc) and intake updates the receipt.
    def receipt() -> dict[str, Any] | None:
        found = httpx.get(f"{intake}/v1/receipts/{submission_id}", headers=hospital).json()
        return found if found["status"] != "received" else None

    decided = eventually(receipt)
    assert decided["status"] == "accepted", decided

    # 4. stats counts it for the hospital and the registry.
    def figures(scope: str) -> dict[str, Any] | None:
        answer = httpx.get(f"{stats}/stats/{scope}", headers=staff)
        if answer.status_code != 200:
            return None
        total = answer.json()["total"]
        return total if total["submissions"].get("diagnosis", {}).get("accepted") == 1 else None

    ous = eventually(lambda: figures("ous"))
    assert ous["case_mix_subgroup"] == {"IIIc": 1}
    assert eventually(lambda: figures("registry"))["tumours"] == 1

    # 5. export transfers it to the Nordic sink, once, without the registry's identifiers.
    nordic = platform.var / "nordic.db"
    [record] = eventually(lambda: _nordic_records(nordic))
    assert national_id not in record
    transferred = json.loads(record)
    assert transferred["region"] == "Helse Sør-Øst"  # the health region, not the hospital
    assert not {"hospital_id", "tumour_ref", "submission_id", "pseudonym"} & set(transferred)
    status = httpx.get(f"{export}/export/status", headers=staff).json()
    assert status["sent"] >= 1

    # 6. the family reserves: export retracts everything sent for the child.
    reservation = httpx.post(f"{intake}/v1/reservations", json={"national_id": national_id}, headers=staff)
    assert reservation.status_code in (200, 201, 202), reservation.text
    eventually(lambda: _nordic_records(nordic) == [])


def _nordic_records(path: Path) -> list[str]:
    """The transfer records at rest in the SQLite database standing for NOPHO-Care."""
    if not path.exists():
        return []
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            if not sqlalchemy.inspect(connection).has_table(RECORDS.name):
                return []
            return list(connection.execute(sqlalchemy.select(RECORDS.c.record)).scalars())
    finally:
        engine.dispose()
