"""`python -m services.stats.dashboard` as a process: configured from the environment, ready once it has
read the topics, and quick to stop on SIGTERM although a browser holds an event stream open."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from deploy.local.kafka import pick_free_ports
from shared.auth import Role, issue_token

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_the_process_serves_streams_and_stops_promptly_with_one_open(kafka_bootstrap: str, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    staff = issue_token(tokens, "staff", Role.STAFF)
    port = pick_free_ports(1)[0]
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": f"p{uuid.uuid4().hex[:8]}.",
        "REGISTRY_TOKENS_FILE": str(tokens),
        "DASHBOARD_HTTP_PORT": str(port),
        "DASHBOARD_SESSION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.stats.dashboard"], env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(url):
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "not ready within 60 s"
            time.sleep(0.2)
        with httpx.stream("GET", f"{url}/events", headers={"Authorization": f"Bearer {staff}"}, timeout=30) as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.iter_lines()
            assert next(lines) == "retry: 3000"
            assert next(lines) == "event: state"
            stopped = time.monotonic()
            process.send_signal(signal.SIGTERM)
            # uvicorn re-raises the signal it caught once it has shut down, as every service does.
            assert process.wait(timeout=10) in (0, -signal.SIGTERM)
            assert time.monotonic() - stopped < 5  # the stream ended; no graceful-shutdown timeout ran out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
