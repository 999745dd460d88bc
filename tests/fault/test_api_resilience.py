"""Intake's API under abuse: oversized bodies, slow clients holding connections open, and many concurrent
requests. Whatever happens to those, the API keeps answering the hospital that behaves: a valid
submission gets its 202 promptly, and nothing is answered with a 5xx.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from deploy.synthetic.identity import synthetic_number
from tests.fault.harness import ARTIFACTS, FaultPlatform
from tests.fixtures.forms import diagnosis_submission

pytestmark = [pytest.mark.fault, pytest.mark.slow]

BAD_INPUT = ARTIFACTS.parent / "bad-input"
NO_BROKER = "127.0.0.1:9"  # nothing listens there
PROMPT_S = 3.0  # a behaving hospital's request is answered within this, whatever else goes on
SLOW_CLIENTS = 200
CONCURRENT = 400


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultPlatform]:
    """Intake alone, its broker unreachable: what it accepts waits in its outbox, and the API is the same."""
    platform = FaultPlatform(tmp_path_factory.mktemp("api"), NO_BROKER)
    platform.start(only=("intake",), ready="/health")
    try:
        yield platform
    finally:
        platform.stop()


def _children(count: int, birth: date) -> list[str]:
    numbers = (synthetic_number(birth, male=True, individual=i) for i in range(501, 1000, 2))
    found = [n for n in numbers if n is not None]
    assert len(found) >= count
    return found[:count]


def _diagnosis(national_id: str, tumour_ref: str) -> dict[str, Any]:
    return diagnosis_submission("ous", national_id, tumour_ref, diagnosed=date.today() - timedelta(days=20), sex="male")


async def _timed_submission(client: httpx.AsyncClient, platform: FaultPlatform, body: dict[str, Any]) -> float:
    started = time.monotonic()
    answer = await client.post(
        f"{platform.url('intake')}/v1/submissions", json=body, headers=platform.headers("ous"), timeout=30.0
    )
    assert answer.status_code == 202, answer.text
    return time.monotonic() - started


def _record(name: str, title: str, sent: str, outcome: str, **figures: Any) -> None:
    BAD_INPUT.mkdir(parents=True, exist_ok=True)
    entry = {
        "name": name,
        "title": title,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sent": sent,
        "outcome": outcome,
        **figures,
    }
    (BAD_INPUT / f"{name}.json").write_text(json.dumps(entry, indent=2) + "\n")


def _is_problem(answer: httpx.Response) -> bool:
    if not answer.headers.get("content-type", "").startswith("application/problem+json"):
        return False
    body = answer.json()
    return body.get("status") == answer.status_code and bool(body.get("title"))


async def test_oversized_bodies_are_refused_early_and_the_api_keeps_answering(platform: FaultPlatform) -> None:
    url, headers = f"{platform.url('intake')}/v1/submissions", platform.headers("ous")
    [child] = _children(1, date(2013, 3, 4))
    huge = b'{"padding": "' + b"x" * (8 * 1024 * 1024) + b'"}'  # 8 MiB, the limit is 256 KiB

    async def chunks() -> Any:  # no Content-Length: the limit must hold on what is actually read
        for start in range(0, len(huge), 64 * 1024):
            yield huge[start : start + 64 * 1024]

    async with httpx.AsyncClient(timeout=60.0) as client:
        started = time.monotonic()
        declared = await client.post(url, content=huge, headers={**headers, "content-type": "application/json"})
        declared_s = time.monotonic() - started
        started = time.monotonic()
        try:
            streamed = await client.post(url, content=chunks(), headers={**headers, "content-type": "application/json"})
        except httpx.RemoteProtocolError:  # the server may answer and close before the upload ends
            streamed = None
        streamed_s = time.monotonic() - started
        for answer in (declared, streamed):
            if answer is not None:
                assert answer.status_code == 413, answer.text
                assert _is_problem(answer)
        # A large but acceptable body (just under the limit) is parsed and refused for its content, not size.
        near = json.dumps({**_diagnosis(child, "BIG-1"), "padding": "x" * (200 * 1024)}).encode()
        answer = await client.post(url, content=near, headers={**headers, "content-type": "application/json"})
        assert answer.status_code == 422 and _is_problem(answer)
        answered_s = await _timed_submission(client, platform, _diagnosis(child, "BIG-2"))
    assert answered_s < PROMPT_S
    _record(
        "oversized",
        "oversized bodies",
        "8 MiB with Content-Length; 8 MiB chunked without one; 200 KiB with an unknown field",
        f"413 problem in {declared_s:.2f} s and {streamed_s:.2f} s (read stops at the limit); "
        f"422 for the unknown field; a valid submission then answered in {answered_s:.2f} s",
    )


async def test_slow_clients_holding_connections_do_not_stop_the_api(platform: FaultPlatform) -> None:
    """Slowloris: hundreds of connections send half a request and stall; everyone else is still served."""
    address = urlsplit(platform.url("intake"))
    children = _children(10, date(2012, 5, 6))
    writers: list[asyncio.StreamWriter] = []
    latencies: list[float] = []
    try:
        for n in range(SLOW_CLIENTS):
            _, writer = await asyncio.open_connection(address.hostname, address.port)
            partial = (
                "POST /v1/submissions HTTP/1.1\r\nHost: intake\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {platform.tokens['ous']}\r\n"
            )
            # Half of them stop inside the headers, half inside a body they announced as 10 kB.
            if n % 2:
                partial += 'Content-Length: 10000\r\n\r\n{"submission_id": "'
            writer.write(partial.encode())
            await writer.drain()
            writers.append(writer)
        async with httpx.AsyncClient(timeout=30.0) as client:
            for n, child in enumerate(children):
                latencies.append(await _timed_submission(client, platform, _diagnosis(child, f"SLOW-{n}")))
                health = await client.get(f"{platform.url('intake')}/health")
                assert health.status_code == 200
    finally:
        for writer in writers:
            writer.close()
    assert max(latencies) < PROMPT_S, latencies
    _record(
        "slow-clients",
        "slow clients",
        f"{SLOW_CLIENTS} connections stalled mid-headers or mid-body, held open",
        f"{len(latencies)} valid submissions meanwhile all 202, slowest {max(latencies):.2f} s",
    )


async def test_many_concurrent_requests_are_all_answered_without_a_5xx(platform: FaultPlatform) -> None:
    """A burst of valid submissions, resends and malformed requests at once: each gets its proper answer."""
    children = _children(CONCURRENT // 2, date(2011, 7, 8))
    bodies = [_diagnosis(child, f"BURST-{n}") for n, child in enumerate(children)]
    requests: list[tuple[str, bytes | dict[str, Any]]] = []
    for body in bodies:
        requests.append(("new", body))
    for body in bodies[: CONCURRENT // 4]:
        requests.append(("resend", body))  # the same submission again: 200, not a second registration
    for n in range(CONCURRENT // 4):
        requests.append(("malformed", b'{"submission_id": "' + str(n).encode() + b'", "form": []}'))
    url, headers = f"{platform.url('intake')}/v1/submissions", platform.headers("ous")
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    not_problems = 0

    async def send(client: httpx.AsyncClient, kind: str, body: bytes | dict[str, Any]) -> None:
        nonlocal not_problems
        started = time.monotonic()
        if isinstance(body, bytes):
            answer = await client.post(url, content=body, headers={**headers, "content-type": "application/json"})
        else:
            answer = await client.post(url, json=body, headers=headers)
        latencies.append(time.monotonic() - started)
        statuses[f"{kind} {answer.status_code}"] += 1
        if answer.status_code >= 400 and not _is_problem(answer):
            not_problems += 1

    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        # The first copy of each submission goes before its resend, all else at once (100 connections).
        started = time.monotonic()
        await asyncio.gather(*(send(client, kind, body) for kind, body in requests if kind != "resend"))
        await asyncio.gather(*(send(client, kind, body) for kind, body in requests if kind == "resend"))
        elapsed = time.monotonic() - started
    expected = {
        "new 202": len(bodies),
        "resend 200": CONCURRENT // 4,
        "malformed 422": CONCURRENT // 4,
    }
    assert dict(statuses) == expected
    assert not_problems == 0
    p99 = statistics.quantiles(latencies, n=100)[98]
    _record(
        "concurrent",
        "many concurrent requests",
        f"{len(requests)} requests over 100 connections: {len(bodies)} new submissions, "
        f"{CONCURRENT // 4} resends, {CONCURRENT // 4} malformed",
        f"all answered in {elapsed:.1f} s ({len(requests) / elapsed:.0f}/s): 202 / 200 / 422 as due, no 5xx, "
        f"every error a problem document; p99 {p99:.2f} s",
    )
