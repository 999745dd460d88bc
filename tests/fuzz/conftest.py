"""Fuzzing intake's API. Its tests are marked `fault` (bad input belongs to the fault suite: run them with
`pytest -m fault`); the marker belongs in pyproject's `markers` too."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fault: breaks part of the running platform under load and reconciles")
