"""The browser tests' fixtures: the system Chromium driven by Playwright, and where screenshots go.

Playwright drives Debian's Chromium (`deploy.local.browser.ensure_chromium`, installed with apt-get on a
fresh machine); its own browser download is never used. Each test gets a fresh browser context, and the
browser itself starts on a fresh temporary profile.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from deploy.local.browser import CHROMIUM_ARGS, ensure_chromium
from shared.settings import REPO_ROOT

ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"  # git-ignored; CI keeps them


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope, not session: Playwright's sync API holds an event loop on this thread while it runs,
    # and the async tests after these need the thread back.
    chromium = ensure_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=list(CHROMIUM_ARGS))
        expect.set_options(timeout=30_000)  # a figure travels four services and a broker
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
