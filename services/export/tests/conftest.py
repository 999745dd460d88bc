from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.export.tests.harness import Harness, migrated_template


@pytest.fixture(scope="session")
async def export_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Export's database migrated once; tests start from copies of it."""
    return await migrated_template(tmp_path_factory.mktemp("export-template"))


@pytest.fixture(params=["sql", "file"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path, export_template: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, export_template, request.param)
    yield h
    await h.close()


@pytest.fixture
async def sql_harness(tmp_path: Path, export_template: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, export_template, "sql")
    yield h
    await h.close()
