"""A local PostgreSQL server from Debian's packages, for development and the integration tests.

The server listens on 127.0.0.1 only, with trust authentication for the `postgres` superuser: a
throw-away local server, never a deployment. PostgreSQL refuses to run as root, so when we are root
every server-side command runs as the `postgres` system user, who owns the data directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy.local.kafka import pick_free_ports

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT / "var" / "postgres" / "data"
DEFAULT_PORT = 55432
SUPERUSER = "postgres"
SERVER_USER = "postgres"  # the system account that runs the server when we are root
_SETTINGS_FILE = "registry-local.conf"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresError(RuntimeError):
    """The local PostgreSQL server could not be installed, initialised, started or used."""


@dataclass(frozen=True)
class PostgresStatus:
    running: bool
    pid: int | None
    port: int | None
    data_dir: Path
    log_file: Path


def find_bindir() -> Path | None:
    """The newest Debian PostgreSQL bin directory, else the one holding an `initdb` on PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def ensure_installed() -> Path:
    """Install Debian's `postgresql` package if its binaries are missing (CI starts from a bare machine)."""
    bindir = find_bindir()
    if bindir is not None:
        return bindir
    if os.geteuid() != 0:
        raise PostgresError("PostgreSQL is not installed; run `apt-get install -y postgresql` as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]
    if _run(install, env=env).returncode != 0:
        _run(["apt-get", "update"], env=env)  # a fresh machine may have no package lists yet
        result = _run(install, env=env)
        if result.returncode != 0:
            raise PostgresError(f"`apt-get install postgresql` failed:\n{result.stdout}{result.stderr}")
    bindir = find_bindir()
    if bindir is None:
        raise PostgresError("`apt-get install postgresql` succeeded but no initdb was found")
    return bindir


class LocalPostgres:
    """One PostgreSQL server: `start()` initialises the data directory on first use."""

    def __init__(
        self,
        data_dir: Path = DEFAULT_DATA_DIR,
        port: int = DEFAULT_PORT,
        *,
        free_port: bool = False,
        durable: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.port = pick_free_ports(1)[0] if free_port else port
        self.durable = durable
        self.log_file = data_dir / "server.log"
        bindir = find_bindir()
        if bindir is None:
            raise PostgresError("PostgreSQL binaries not found: call ensure_installed() or install `postgresql`")
        self.bindir = bindir

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def start(self, timeout: float = 60.0) -> None:
        """Initialise the data directory if needed, write the settings and start unless running."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        current = self.status()
        if current.running:
            self.port = current.port or self.port  # already running: it serves where it started
            return
        (self.data_dir / _SETTINGS_FILE).write_text(self._settings())
        self._chown(self.data_dir / _SETTINGS_FILE)
        self._run_as_owner(
            "pg_ctl",
            "start",
            "--wait",
            f"--timeout={int(timeout)}",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            failure=f"PostgreSQL did not start; see {self.log_file}",
        )

    def stop(self, timeout: float = 60.0) -> None:
        """Stop in fast mode (roll back open transactions, disconnect clients) if running."""
        if self.status().running:
            self._run_as_owner(
                "pg_ctl",
                "stop",
                "--wait",
                f"--timeout={int(timeout)}",
                "-m",
                "fast",
                "-D",
                str(self.data_dir),
                failure=f"PostgreSQL did not stop; see {self.log_file}",
            )

    def status(self) -> PostgresStatus:
        running = (self.data_dir / "PG_VERSION").exists() and self._pg_ctl_status()
        pid = port = None
        if running:
            # postmaster.pid: pid, data directory, start time, port, ...
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        return PostgresStatus(running, pid, port, self.data_dir, self.log_file)

    def create_database(self, name: str) -> None:
        self._client("createdb", _checked(name))

    def drop_database(self, name: str) -> None:
        # --force ends sessions a test left open, instead of failing the drop.
        self._client("dropdb", "--if-exists", "--force", _checked(name))

    # -- internals -------------------------------------------------------------------------------

    def _settings(self) -> str:
        settings = [
            f"port = {self.port}",
            "listen_addresses = '127.0.0.1'",
            # TCP only: no socket in /var/run/postgresql, which may be missing or owned by another server.
            "unix_socket_directories = ''",
            "max_connections = 200",
            # The default 128 MB is sized for a small shared host. A replay's working set (processed ids,
            # submissions, tumours: random keys, so scattered pages) outgrows it at a few hundred thousand
            # events, and every miss goes to the kernel's cache. Taken only as pages are used.
            "shared_buffers = 1GB",
        ]
        if not self.durable:
            # A test server is thrown away after the session: trade crash safety for speed.
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        return "".join(f"{line}\n" for line in settings)

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.data_dir)
        self._run_as_owner(
            "initdb",
            "-D",
            str(self.data_dir),
            f"--username={SUPERUSER}",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            failure=f"initdb of {self.data_dir} failed",
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"include_if_exists = '{_SETTINGS_FILE}'\n")

    def _pg_ctl_status(self) -> bool:
        # 0: running; 3: not running; 4: no usable data directory.
        return _run(self._owner_command("pg_ctl", "status", "-D", str(self.data_dir))).returncode == 0

    def _owner_command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bindir / program), *args]
        return ["runuser", "-u", SERVER_USER, "--", *command] if os.geteuid() == 0 else command

    def _run_as_owner(self, program: str, *args: str, failure: str) -> None:
        # pg_ctl hands the server's output to the log file, so capturing here cannot block on the server.
        result = _run(self._owner_command(program, *args))
        if result.returncode != 0:
            raise PostgresError(f"{failure}:\n{result.stdout}{result.stderr}")

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, SERVER_USER, SERVER_USER)

    def _client(self, program: str, *args: str) -> None:
        result = _run([str(self.bindir / program), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, *args])
        if result.returncode != 0:
            raise PostgresError(f"{program} {' '.join(args)} failed:\n{result.stderr}")


def _run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)


def _checked(name: str) -> str:
    """Keep database names plain identifiers: they go into URLs and SQL tools' messages unquoted."""
    if not _NAME.match(name):
        raise ValueError(f"not a plain lower-case database name: {name!r}")
    return name
