"""The headless browser the dashboard's browser tests drive: Debian's Chromium, never a test tool's own
download (build machines cannot fetch one). A fresh CI machine has no Chromium, so it is installed with
apt-get when missing, as deploy/local/postgres.py does for PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# chromium-driver too: the same system browser then serves Selenium as well as Playwright.
PACKAGES = ("chromium", "chromium-driver")
# Headless, and nothing that reaches out to the network or needs a display, a GPU or a sandbox (containers).
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class BrowserError(RuntimeError):
    """Chromium is missing and could not be installed."""


def find_chromium() -> Path | None:
    if CHROMIUM.exists():
        return CHROMIUM
    found = shutil.which("chromium")
    return Path(found) if found else None


def ensure_chromium() -> Path:
    """The system Chromium's path, installing Debian's packages first when it is missing (takes minutes)."""
    found = find_chromium()
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise BrowserError(f"Chromium is not installed; run `apt-get install -y {' '.join(PACKAGES)}` as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    if _run(install, env).returncode != 0:
        _run(["apt-get", "update"], env)  # a fresh machine may have no package lists yet
        result = _run(install, env)
        if result.returncode != 0:
            raise BrowserError(f"`apt-get install chromium` failed:\n{result.stdout}{result.stderr}")
    found = find_chromium()
    if found is None:
        raise BrowserError("`apt-get install chromium` succeeded but no chromium executable was found")
    return found


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
