"""deploy/Dockerfile and .dockerignore: one image for the four services, non-root, health-checked."""

from __future__ import annotations

import fnmatch
import http.server
import json
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.support import REPO, SERVICES

DOCKERFILE = REPO / "deploy" / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped (also inside continuations), lines joined."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined: list[str] = []
    current = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            joined.append(current.strip())
        current = ""
    result = []
    for line in joined:
        keyword, _, arguments = line.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    return result


def final_stage(parsed: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(parsed) if keyword == "FROM")
    return parsed[last_from:]


@pytest.fixture(scope="module")
def parsed() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(part, str) for part in value), arguments
    return value


def env_pairs(arguments: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(arguments))


def test_final_stage_runs_as_a_numeric_non_root_user(parsed: list[tuple[str, str]]) -> None:
    stage = final_stage(parsed)
    users = [arguments for keyword, arguments in stage if keyword == "USER"]
    assert users, "the final stage never switches away from root"
    user, _, group = users[-1].partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it; and not root by number or name.
    assert user.isdigit() and int(user) >= 1000, users[-1]
    assert not group or (group.isdigit() and int(group) != 0)
    created = " ".join(arguments for keyword, arguments in stage if keyword == "RUN")
    assert f"--uid {user}" in created, "the image should create the user it runs as"


def test_healthcheck_is_the_liveness_endpoint(parsed: list[tuple[str, str]]) -> None:
    checks = [arguments for keyword, arguments in final_stage(parsed) if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/health" in checks[0] and "/ready" not in checks[0]


def _healthcheck_command(parsed: list[tuple[str, str]]) -> list[str]:
    check = next(arguments for keyword, arguments in final_stage(parsed) if keyword == "HEALTHCHECK")
    command = exec_form(check[check.index("CMD") + len("CMD") :].strip())
    assert command[:2] == ["python", "-c"]
    return command


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[http.server.HTTPServer, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def test_healthcheck_probes_the_port_the_service_was_given(
    parsed: list[tuple[str, str]], health_server: tuple[http.server.HTTPServer, type[_Handler]]
) -> None:
    # Run the image's own probe against a stand-in service on the port named by <SERVICE>_HTTP_PORT.
    server, handler = health_server
    code = _healthcheck_command(parsed)[2]
    env = {"PATH": "/usr/bin:/bin", "STATS_HTTP_PORT": str(server.server_address[1])}
    ok = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=30, check=False)
    assert ok.returncode == 0, ok.stderr
    handler.status = 503
    failing = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=30, check=False)
    assert failing.returncode != 0


def test_entrypoint_runs_a_module_and_the_default_is_a_service(parsed: list[tuple[str, str]]) -> None:
    stage = final_stage(parsed)
    entrypoint = [exec_form(a) for k, a in stage if k == "ENTRYPOINT"]
    command = [exec_form(a) for k, a in stage if k == "CMD"]
    assert entrypoint == [["python", "-m"]]
    assert len(command) == 1 and len(command[0]) == 1
    module = command[0][0]
    assert module in {f"services.{name}" for name in SERVICES}
    assert (REPO / module.replace(".", "/") / "__main__.py").is_file()


def test_base_image_is_python_3_11_slim_and_pinned(parsed: list[tuple[str, str]]) -> None:
    args = {k: v for k, v in (a.split("=", 1) for kw, a in parsed if kw == "ARG" and "=" in a)}
    for keyword, arguments in parsed:
        if keyword != "FROM":
            continue
        image = arguments.split()[0]
        if image.startswith("${"):
            image = args[image.strip("${}")]
        name, _, tag = image.partition(":")
        assert name == "python" and tag.startswith("3.11") and "slim" in tag, image
        assert tag != "latest"


def test_install_is_a_regular_install_pinned_by_the_constraints(parsed: list[tuple[str, str]]) -> None:
    runs = [arguments for keyword, arguments in parsed if keyword == "RUN"]
    installs = [run for run in runs if "pip install" in run]
    assert installs and all("-c constraints.txt" in run for run in installs)
    assert any(re.search(r"pip install -c constraints.txt \.(\s|$)", run) for run in installs)
    assert not any(" -e " in run or "--editable" in run for run in installs)


def test_the_image_listens_beyond_loopback_for_every_service(parsed: list[tuple[str, str]]) -> None:
    env: dict[str, str] = {}
    for keyword, arguments in final_stage(parsed):
        if keyword == "ENV":
            env |= env_pairs(arguments)
    for name in SERVICES:
        assert env.get(f"{name.upper()}_HTTP_HOST") == "0.0.0.0"


def _ignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves `path` out (the subset of .dockerignore syntax we use)."""
    excluded = False
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes)
        if hit:
            excluded = not negate
    return excluded


def test_build_context_keeps_what_the_build_copies(parsed: list[tuple[str, str]]) -> None:
    patterns = _ignore_patterns()
    for keyword, arguments in parsed:
        if keyword != "COPY" or "--from=" in arguments:
            continue
        *sources, _destination = arguments.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert not ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    assert not ignored("services/validation/data/iccc.csv", patterns)


@pytest.mark.parametrize(
    "path",
    [
        "var/intake.db",
        ".venv/bin/python",
        ".git/config",
        ".pytest_cache/v/cache",
        "shared/__pycache__/settings.cpython-311.pyc",
        "deploy/compose/secrets.env",
        "deploy/compose/tokens/tokens.json",
    ],
)
def test_build_context_leaves_out_local_state_and_secrets(path: str) -> None:
    assert ignored(path, _ignore_patterns())
