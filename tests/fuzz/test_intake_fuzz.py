"""Fuzzing intake's API, the registry's door to the outside: whatever arrives, no 5xx, and every 4xx is an
RFC 7807 problem document.

Two generators against the real intake process (its HTTP server, its database; no broker needed, the
outbox keeps what is accepted):
- schemathesis, from intake's own OpenAPI document: every operation, with bodies, paths, queries and
  headers that fit the schema and that break it (positive and negative generation), with hospital and
  staff tokens;
- hypothesis, from realistic synthetic submissions (deploy.synthetic) mutated a few thousand ways: fields
  dropped, retyped, oversized or added, identity numbers and dates broken, the JSON itself broken.

Both run derandomized, so a run is the same every time; a failure prints the request that caused it.
"""

from __future__ import annotations

import copy
import json
import string
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from deploy.synthetic import GeneratorConfig, Kind, generate
from tests.fault.harness import ARTIFACTS, FaultPlatform

try:
    import schemathesis
except ImportError:  # a dev dependency; only the schema-driven test needs it
    schemathesis = None

pytestmark = [pytest.mark.fault, pytest.mark.slow]

BAD_INPUT = ARTIFACTS.parent / "bad-input"
NO_BROKER = "127.0.0.1:9"  # nothing listens there: intake accepts into its outbox all the same
MALFORMED_EXAMPLES = 2500
SCHEMA_EXAMPLES = 60  # per operation
STAFF_PATHS = ("/v1/reservations",)
SEEN: dict[str, Counter[str]] = {"schema": Counter(), "malformed": Counter()}


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultPlatform]:
    platform = FaultPlatform(tmp_path_factory.mktemp("fuzz"), NO_BROKER)
    platform.start(only=("intake",), ready="/health")
    try:
        yield platform
    finally:
        platform.stop()
        _record()


def _content_type(response: Any) -> str:
    """httpx's headers hold strings; schemathesis' lists of them."""
    for name, value in response.headers.items():
        if name.lower() == "content-type":
            return str(value[0] if isinstance(value, list) else value)
    return ""


def _problem_failure(response: httpx.Response | Any, where: str) -> str | None:
    """What is wrong with an answer, or None: no 5xx, and a 4xx must be a problem document."""
    status = response.status_code
    if status >= 500:
        return f"{where}: {status} {response.text[:300]}"
    if status >= 400:
        content_type = _content_type(response)
        if not content_type.startswith("application/problem+json"):
            return f"{where}: {status} with content type {content_type!r}, not a problem document"
        body = json.loads(response.content)
        if body.get("status") != status or not body.get("title"):
            return f"{where}: {status} problem without its status and title: {body}"
    return None


def test_every_operation_answers_schema_driven_input_without_5xx_and_with_problems(intake: FaultPlatform) -> None:
    """Every operation of intake's OpenAPI document, input that fits it and input that breaks it."""
    if schemathesis is None:
        pytest.skip("schemathesis is not installed (add it to the dev dependencies)")
    base_url = intake.url("intake")
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [f"{op.method} {op.path}" for op in operations]
    failures: list[str] = []
    for operation in operations:
        holder = "staff" if operation.path.startswith(STAFF_PATHS) else "ous"
        headers = {"Authorization": f"Bearer {intake.tokens[holder]}"}
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, base_url, headers, failures)
            except Unsatisfiable:  # nothing in the operation's input to break (GET /health): nothing to send
                assert mode is schemathesis.GenerationMode.NEGATIVE, f"{operation.method} {operation.path}"
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures[:20])


def _fuzz(operation: Any, mode: Any, base_url: str, headers: dict[str, str], failures: list[str]) -> None:
    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=SCHEMA_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        SEEN["schema"][f"{case.method.upper()} {case.path} {response.status_code}"] += 1
        if case.path == "/ready" and response.status_code == 503:
            return  # the readiness probe's own answer: no broker here, so not ready, as it should say
        if failure := _problem_failure(response, f"{case.method.upper()} {case.formatted_path}"):
            failures.append(f"{failure}\n  reproduce: {case.as_curl_command()}")

    check()


# --- a few thousand malformed forms ---------------------------------------------------------------------

_SEEDS = [
    item.payload
    for item in generate(GeneratorConfig(seed=5, start_year=2022, years=1, cases_per_year=20))
    if item.kind is Kind.SUBMISSION
][:40]

_ODD_VALUES = st.sampled_from(
    [
        None,
        True,
        0,
        -1,
        2**63,
        10**40,
        1.5,
        float("inf"),
        "",
        " ",
        "\x00",
        "\ud800",
        "é" * 3,
        "١٢٣٤٥٦٧٨٩٠١",  # Arabic-Indic digits: not an identity number
        "x" * 70_000,
        [],
        {},
        [[[[[]]]]],
        {"$ref": "#/"},
        "2024-02-30",
        "0000-01-01",
        "9999-12-31T23:59:59+14:00",
        "2024-05-01T12:00:00",  # no time zone
        "../../etc/passwd",
        "'; drop table submissions; --",
        "<script>alert(1)</script>",
    ]
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _set(document: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> None:
    for step in path[:-1]:
        document = document[step]
    if delete:
        del document[path[-1]]
    else:
        document[path[-1]] = value


@st.composite
def malformed_bodies(draw: st.DrawFn) -> bytes:
    """A realistic submission, broken in one to three ways, as the bytes a client sends."""
    body = json.loads(json.dumps(draw(st.sampled_from(_SEEDS))))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(body) if isinstance(body, dict) else []
        how = draw(st.sampled_from(["drop", "retype", "add", "identity", "string", "swap"] if paths else ["add"]))
        if how == "add" or not isinstance(body, dict):
            name = draw(st.text(string.ascii_letters + "_", min_size=1, max_size=12))
            body = body if isinstance(body, dict) else {"body": body}
            body[name] = copy.deepcopy(draw(_ODD_VALUES))
            continue
        path = draw(st.sampled_from(paths))
        if how == "drop":
            _set(body, path, None, delete=True)
        elif how == "retype":
            _set(body, path, copy.deepcopy(draw(_ODD_VALUES)))
        elif how == "identity":
            digits = draw(st.text("0123456789", min_size=9, max_size=13))
            body.setdefault("patient", {})
            body["patient"] = {"national_id": digits} if not isinstance(body["patient"], dict) else body["patient"]
            body["patient"]["national_id"] = digits
        elif how == "string":
            _set(body, path, draw(st.text(min_size=0, max_size=300)))
        else:  # another hospital, form type or discriminator
            field = draw(st.sampled_from(["hospital_id", "form_version", "form"]))
            body[field] = draw(st.sampled_from(["haukeland", "nowhere", 2, {"form_type": "autopsy"}, "diagnosis"]))
    raw = json.dumps(body, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none"] * 6 + ["truncate", "bom", "nul", "latin1", "nest", "array"]))
    if damage == "truncate":
        raw = raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
    elif damage == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif damage == "nul":
        raw = raw.replace(b":", b":\x00", 1)
    elif damage == "latin1":
        raw = raw + "ø".encode("latin-1")
    elif damage == "nest":
        depth = draw(st.integers(100, 5000))
        raw = b'{"form": ' + b"[" * depth + b"]" * depth + b"}"
    elif damage == "array":
        raw = b"[" + raw + b"]"
    return raw


@given(body=malformed_bodies())
@settings(
    max_examples=MALFORMED_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_thousands_of_malformed_forms_get_a_problem_never_a_5xx(body: bytes, intake: FaultPlatform) -> None:
    response = _client(intake).post(
        "/v1/submissions",
        content=body,
        headers={"Authorization": f"Bearer {intake.tokens['ous']}", "content-type": "application/json"},
    )
    SEEN["malformed"][str(response.status_code)] += 1
    failure = _problem_failure(response, "POST /v1/submissions")
    assert failure is None, f"{failure}\nbody: {body[:500]!r}"


_CLIENTS: dict[str, httpx.Client] = {}


def _client(intake: FaultPlatform) -> httpx.Client:
    """One keep-alive connection for the thousands of requests (a new one each would measure TCP)."""
    url = intake.url("intake")
    if url not in _CLIENTS:
        _CLIENTS[url] = httpx.Client(base_url=url, timeout=30.0)
    return _CLIENTS[url]


def _record() -> None:
    for client in _CLIENTS.values():
        client.close()
    _CLIENTS.clear()
    schema_cases, malformed = SEEN["schema"], SEEN["malformed"]
    if not schema_cases and not malformed:
        return
    BAD_INPUT.mkdir(parents=True, exist_ok=True)
    operations = {key.rsplit(" ", 1)[0] for key in schema_cases}
    statuses: Counter[str] = Counter()
    for key, count in schema_cases.items():
        statuses[key.rsplit(" ", 1)[1]] += count
    (BAD_INPUT / "fuzz.json").write_text(
        json.dumps(
            {
                "name": "fuzz",
                "title": "fuzzing intake's API",
                "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "sent": f"{sum(schema_cases.values())} schemathesis cases over {len(operations)} operations "
                f"(positive and negative); {sum(malformed.values())} malformed submission bodies",
                "outcome": "no 5xx; every 4xx a problem document. Statuses: schema cases "
                + ", ".join(f"{k} ×{v}" for k, v in sorted(statuses.items()))
                + "; malformed bodies "
                + ", ".join(f"{k} ×{v}" for k, v in sorted(malformed.items())),
                "schema_cases": dict(sorted(schema_cases.items())),
                "malformed_statuses": dict(sorted(malformed.items())),
            },
            indent=2,
        )
        + "\n"
    )
