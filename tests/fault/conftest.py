"""The fault suite's markers and fixtures. The markers belong in pyproject's `markers` too."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fault: breaks part of the running platform under load and reconciles")
