"""The committed AsyncAPI and OpenAPI documents are the ones the code generates (`registry docs`)."""

from __future__ import annotations

from deploy.apidocs import documents, stale
from shared.settings import REPO_ROOT


def test_committed_interface_documents_are_up_to_date() -> None:
    outdated = [str(path.relative_to(REPO_ROOT)) for path in stale(documents())]
    assert outdated == [], "run `registry docs` and commit the result"
