"""The whole platform on one machine, without Docker: a local Kafka broker and the four services as
processes on SQLite files under `var/`, each with its own database, as in production.

`registry up` runs it in the foreground (Ctrl-C stops everything, services first so they commit their
offsets, then the broker); `registry down` stops what a previous `up` left running; `registry status`
reports on both. Secrets and API tokens for local use are generated once into `var/` (git-ignored).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from deploy.local.kafka import KafkaCluster
from shared.auth import Role, issue_token
from shared.hospitals import HOSPITALS
from shared.settings import VAR_DIR


@dataclass(frozen=True, slots=True)
class ServiceProcess:
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


SERVICES = (
    ServiceProcess("intake", 8001),
    ServiceProcess("validation", 8002),
    ServiceProcess("stats", 8003),
    ServiceProcess("export", 8004),
    ServiceProcess("stats.dashboard", 8005),  # python -m services.stats.dashboard, reading DASHBOARD_*
)
SECRET_NAMES = (
    "INTAKE_PSEUDONYM_KEY",
    "INTAKE_VAULT_KEY",
    "EXPORT_PSEUDONYM_KEY",
    "EXPORT_SIGNING_KEY",
    "DASHBOARD_SESSION_KEY",
)


class LocalPlatform:
    def __init__(
        self,
        var_dir: Path = VAR_DIR,
        bootstrap_servers: str | None = None,
        *,
        services: tuple[ServiceProcess, ...] = SERVICES,
        topic_prefix: str = "",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.var = var_dir
        self.kafka = None if bootstrap_servers else KafkaCluster("platform", 1)
        self._bootstrap = bootstrap_servers
        self.services = services
        self.topic_prefix = topic_prefix  # isolates a test's platform on a shared broker
        self.extra_env = extra_env or {}
        self.run_dir = var_dir / "run"
        self.log_dir = var_dir / "logs"
        self.tokens_file = var_dir / "tokens.json"
        self.demo_tokens_file = var_dir / "demo-tokens.json"
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # started by this process: reaped here

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers if self.kafka else self._bootstrap or ""

    # -- configuration -------------------------------------------------------------------------

    def secrets(self) -> dict[str, str]:
        """Local keys, made once: restarting keeps pseudonyms stable (a new key would re-key children)."""
        path = self.var / "secrets.json"
        kept = json.loads(path.read_text()) if path.exists() else {}
        if set(SECRET_NAMES) - set(kept):  # new, or made before a secret was added: existing keys stay
            path.parent.mkdir(parents=True, exist_ok=True)
            keys = {name: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode() for name in SECRET_NAMES} | kept
            path.write_text(json.dumps(keys, indent=2))
            path.chmod(0o600)
        return dict(json.loads(path.read_text()))

    def demo_tokens(self) -> dict[str, str]:
        """A token per hospital and one for staff, for the demo data and for trying the API by hand."""
        if not self.demo_tokens_file.exists():
            tokens = {h.id: issue_token(self.tokens_file, f"{h.id}-demo", Role.HOSPITAL, h.id) for h in HOSPITALS}
            tokens["staff"] = issue_token(self.tokens_file, "staff-demo", Role.STAFF)
            self.demo_tokens_file.write_text(json.dumps(tokens, indent=2))
            self.demo_tokens_file.chmod(0o600)
        return dict(json.loads(self.demo_tokens_file.read_text()))

    def environment(self, service: ServiceProcess) -> dict[str, str]:
        prefix = service.name.rpartition(".")[2].upper()  # stats.dashboard: DASHBOARD_
        return {
            **os.environ,
            **self.secrets(),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": self.topic_prefix,
            "REGISTRY_TOKENS_FILE": str(self.tokens_file),
            f"{prefix}_DATABASE_URL": f"sqlite+aiosqlite:///{self.var / (service.name + '.db')}",
            f"{prefix}_HTTP_PORT": str(service.port),
            # The stand-in for the Nordic database lives with the rest of this platform's state.
            "EXPORT_SINK_DATABASE_URL": f"sqlite+aiosqlite:///{self.var / 'nordic.db'}",
            "EXPORT_SINK_DIR": str(self.var / "nordic-drop"),
            **self.extra_env,
        }

    # -- lifecycle -----------------------------------------------------------------------------

    def start_kafka(self) -> None:
        if self.kafka is not None:
            self.kafka.start()

    def start_service(self, service: ServiceProcess) -> None:
        if self.pid(service) is not None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{service.name}.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{service.name}"],
                env=self.environment(service),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches us, and we stop services in order
            )
        self._children[service.name] = process
        self._pid_file(service).write_text(str(process.pid))

    def wait_ready(self, service: ServiceProcess, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid(service) is None:
                raise RuntimeError(f"{service.name} exited; see {self.log_dir / (service.name + '.log')}")
            if self.ready(service):
                return
            time.sleep(0.3)
        raise RuntimeError(f"{service.name} not ready after {timeout:.0f} s; see its log in {self.log_dir}")

    def ready(self, service: ServiceProcess) -> bool:
        try:
            return httpx.get(f"{service.url}/ready", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def pid(self, service: ServiceProcess) -> int | None:
        if (child := self._children.get(service.name)) is not None:
            return child.pid if child.poll() is None else None
        try:
            pid = int(self._pid_file(service).read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        return pid

    def stop_service(self, service: ServiceProcess, timeout: float = 40.0) -> None:
        """SIGTERM: the service finishes its in-flight batch, commits offsets, and exits."""
        pid = self.pid(service)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.pid(service) is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.pid(service) is not None:
                os.kill(pid, signal.SIGKILL)
        self._pid_file(service).unlink(missing_ok=True)

    def service(self, name: str) -> ServiceProcess:
        return next(s for s in self.services if s.name == name)

    def stop(self) -> None:
        for service in reversed(self.services):
            self.stop_service(service)
        if self.kafka is not None:
            self.kafka.stop()

    def _pid_file(self, service: ServiceProcess) -> Path:
        return self.run_dir / f"{service.name}.pid"
