"""What a full synthetic run leaves behind, scanned: every topic's messages, every log line, every export
record. No identity number anywhere (it stays in intake's vault), no person's name, and nothing in the
export that links back to the registry (registry pseudonym, submission id, hospital, tumour reference).

On top of the synthetic run, a hospital's mistakes: an identity number written into free text (refused),
and a name written into a late-effects note (accepted: it is the hospital's clinical text and travels
between the services, but NOPHO-Care gets late effects only as a count, so the name must not reach it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from stdnum.no import fodselsnummer

from deploy.ops.clients import read_to_end
from deploy.synthetic import Kind
from deploy.synthetic.identity import synthetic_number
from shared.events import SubmissionReceived
from shared.topics import ALL_TOPICS, HOSPITAL_INBOUND, SUBMISSIONS_RECEIVED
from tests.fault.harness import FaultPlatform, settle, sink_rows
from tests.fixtures.forms import diagnosis_submission, submission
from tests.security.conftest import SyntheticRun

pytestmark = [pytest.mark.security, pytest.mark.kafka, pytest.mark.slow, pytest.mark.e2e]

PLANTED_NAME = "Kari Nordmann"
# Common Norwegian given names and surnames: nothing the platform writes should ever contain one.
NAMES = re.compile(
    r"\b(Kari|Ola|Nordmann|Hansen|Johansen|Olsen|Larsen|Andersen|Pedersen|Nilsen|Kristiansen|Jensen|Karlsen|"
    r"Johnsen|Pettersen|Eriksen|Berg|Haugen|Hagen|Johannessen|Andreassen|Jacobsen|Halvorsen|Henriksen|"
    r"Sørensen|Jakobsen|Gundersen|Iversen|Solberg|Svendsen|Knutsen|Martinsen|Paulsen|Bakken|Kristoffersen|"
    r"Mathisen|Amundsen|Rasmussen|Solheim|Ingrid|Astrid|Sigrid|Nora|Emma|Sofie|Jakob|Emil|Noah|Oliver|"
    r"Aksel|Filip|Lukas|Magnus|Henrik|Sverre)\b"
)
ELEVEN_DIGITS = re.compile(rb"(?<!\d)\d{6} ?\d{5}(?!\d)")


def _an_identity_number(digits: bytes) -> bool:
    """A real or synthetic (month + 80) Norwegian identity number: both control digits right."""
    number = digits.replace(b" ", b"").decode()
    return (
        fodselsnummer.calc_check_digit1(number[:9]) == number[9]
        and fodselsnummer.calc_check_digit2(number[:10]) == number[10]
    )


@dataclass
class Planted:
    national_id: str


@pytest.fixture(scope="module")
async def planted(synthetic_run: SyntheticRun) -> Planted:
    platform = synthetic_run.platform
    national_id = next(
        n for i in range(901, 999, 2) if (n := synthetic_number(date(2012, 10, 11), male=True, individual=i))
    )
    diagnosed = date.today() - timedelta(days=500)
    follow_up = {
        "form_type": "follow_up",
        "tumour_ref": "PRIV-1",
        "last_contact_date": (diagnosed + timedelta(days=400)).isoformat(),
        "vital_status": "alive",
        "late_effects": ["hearing loss", f"mother {PLANTED_NAME} reports fatigue"],
    }
    sibling = next(n for i in range(801, 899, 2) if (n := synthetic_number(date(2010, 1, 2), True, i)))
    async with httpx.AsyncClient(base_url=platform.url("intake"), headers=platform.headers("st-olav")) as client:
        diagnosis = diagnosis_submission("st-olav", national_id, "PRIV-1", diagnosed=diagnosed, sex="male")
        assert (await client.post("/v1/submissions", json=diagnosis)).status_code == 202
        assert (
            await client.post("/v1/submissions", json=submission("st-olav", national_id, follow_up))
        ).status_code == 202
        leaky = {**follow_up, "late_effects": [f"as for sibling {sibling}"]}
        refused = await client.post("/v1/submissions", json=submission("st-olav", national_id, leaky))
        assert refused.status_code == 422, refused.text  # an identity number in free text: not registered
        assert sibling not in refused.text
    await settle(platform)
    return Planted(national_id)


def _national_ids(run: SyntheticRun, planted: Planted) -> set[bytes]:
    ids = {planted.national_id}
    for item in run.items:
        payload = item.payload
        ids.add(payload["national_id"] if item.kind is Kind.RESERVATION else payload["patient"]["national_id"])
    return {i.encode() for i in ids}


def _leaks(text: bytes, national_ids: set[bytes]) -> list[str]:
    found = [f"identity number …{n[-4:].decode()}" for n in national_ids if n in text]
    found += [f"an identity number …{m[-4:].decode()}" for m in ELEVEN_DIGITS.findall(text) if _an_identity_number(m)]
    found += [f"name {m}" for m in NAMES.findall(text.decode("utf-8", "replace"))]
    return found


async def test_no_identity_number_or_name_on_any_topic(synthetic_run: SyntheticRun, planted: Planted) -> None:
    """Every message of every topic the platform writes (the hospitals' own inbound topic is their input),
    key, value and headers. The planted late-effects note is the hospital's clinical text, which the
    services pass between them; the name check skips that one note, and only it."""
    platform = synthetic_run.platform
    kafka = platform.kafka
    topics = [kafka.topic(spec) for spec in ALL_TOPICS if spec is not HOSPITAL_INBOUND]
    records = await read_to_end(kafka, topics)
    national_ids = _national_ids(synthetic_run, planted)
    problems = []
    for record in records:
        raw = b"".join([record.key or b"", record.value or b"", *(v or b"" for _, v in record.headers or ())])
        raw = raw.replace(f"mother {PLANTED_NAME} reports fatigue".encode(), b"<the hospital's note>")
        problems += [f"{record.topic}@{record.partition}:{record.offset}: {leak}" for leak in _leaks(raw, national_ids)]
    assert not problems, problems[:10]
    assert len({r.topic for r in records}) >= 6 and len(records) > 500, "the scan had little to look at"


async def test_no_identity_number_or_name_in_any_log_line(synthetic_run: SyntheticRun, planted: Planted) -> None:
    platform = synthetic_run.platform
    national_ids = _national_ids(synthetic_run, planted)
    problems, lines = [], 0
    for log in sorted(platform.platform.log_dir.glob("*.log")):
        for number, line in enumerate(log.read_bytes().splitlines(), 1):
            lines += 1
            problems += [f"{log.name}:{number}: {leak}" for leak in _leaks(line, national_ids)]
    assert not problems, problems[:10]
    assert lines > 50


async def test_the_export_holds_nothing_that_leads_back_to_the_child(
    synthetic_run: SyntheticRun, planted: Planted
) -> None:
    """Every record at the Nordic sink and every entry of export's audit log (JSON and CSV): no identity
    number, no name, no registry pseudonym, submission id, hospital id or tumour reference."""
    platform = synthetic_run.platform
    kafka = platform.kafka
    received = [
        SubmissionReceived.from_json(r.value) for r in await read_to_end(kafka, [kafka.topic(SUBMISSIONS_RECEIVED)])
    ]
    pseudonyms = {e.child.pseudonym for e in received}
    submission_ids = {str(e.submission_id) for e in received}
    tumour_refs = {e.form.tumour_ref for e in received}
    hospitals = {e.hospital_id for e in received}
    rows = sink_rows(platform.nordic_db)
    staff = platform.headers("staff")
    async with httpx.AsyncClient(base_url=platform.url("export"), headers=staff, timeout=60.0) as client:
        audit_csv = (await client.get("/export/audit.csv")).text
        audit: list[dict[str, Any]] = []
        after: int | None = 0
        while after is not None:
            page = (await client.get("/export/audit", params={"after": after, "limit": 1000})).json()
            audit += page["entries"]
            after = page["next_after"]
    exported = [json.dumps(row, default=str) for row in rows.values()]
    exported += [json.dumps(entry) for entry in audit]
    exported.append(audit_csv)
    national_ids = _national_ids(synthetic_run, planted)
    problems = []
    for text in exported:
        problems += _leaks(text.encode(), national_ids)
        problems += [f"registry pseudonym {p[:6]}…" for p in pseudonyms if p in text]
        problems += [f"submission id {s}" for s in submission_ids if s in text]
    for row in rows.values():
        values = _values(json.loads(row["record"]))
        problems += [f"hospital id {v!r}" for v in values if v in hospitals]
        problems += [f"tumour reference {v!r}" for v in values if v in tumour_refs]
    assert not problems, problems[:10]
    assert len(rows) > 50 and len(audit) >= len(rows)
    # The planted note reached the sink as a count only.
    child = platform.export_ids.child(platform.pseudonym(planted.national_id))
    [follow_up] = [
        json.loads(row["record"])
        for row in rows.values()
        if row["child_id"] == child and row["form_type"] == "follow_up"
    ]
    assert follow_up["content"]["late_effects_count"] == 2


def _values(document: Any) -> list[Any]:
    if isinstance(document, dict):
        return [v for value in document.values() for v in _values(value)]
    if isinstance(document, list):
        return [v for value in document for v in _values(value)]
    return [document]


async def test_the_scan_would_see_a_leak(synthetic_run: SyntheticRun, planted: Planted) -> None:
    """The detectors find what they look for: an identity number, the planted name, a registry pseudonym."""
    national_ids = _national_ids(synthetic_run, planted)
    assert _leaks(f"log: patient {planted.national_id} seen".encode(), national_ids)
    assert _leaks(f"note: {PLANTED_NAME}".encode(), set())
    other = next(n for i in range(601, 699, 2) if (n := synthetic_number(date(2009, 3, 4), False, i + 1)))
    assert _leaks(f"an unknown child {other[:6]} {other[6:]}".encode(), set())  # spaced, and not in the run
    assert not _leaks(b"receipt 12345678901 of 2024", set())  # 11 digits that are no identity number


async def test_platform_var_keeps_the_vault_sealed(synthetic_run: SyntheticRun, planted: Planted) -> None:
    """Intake's database is where the identity numbers live: sealed, never in clear, like every other file the
    platform writes (databases of the four services, the Nordic sink, logs)."""
    platform: FaultPlatform = synthetic_run.platform
    national_ids = _national_ids(synthetic_run, planted)
    files = [p for p in platform.var.rglob("*") if p.is_file() and p.suffix in (".db", ".log", ".db-wal", "")]
    found = [f"{p.name}: …{n[-4:].decode()}" for p in files for n in national_ids if n in p.read_bytes()]
    assert not found, found[:10]
    assert any(p.name == "intake.db" for p in files)
