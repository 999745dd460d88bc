"""`registry docs`: write (or check) the AsyncAPI and OpenAPI documents under docs/api/."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from deploy.apidocs import documents, stale
from shared.settings import REPO_ROOT

console = Console()


def docs(
    check: Annotated[bool, typer.Option("--check", help="Fail if the committed documents are out of date.")] = False,
) -> None:
    """Generate the AsyncAPI document of all topics and the OpenAPI document of each HTTP API."""
    rendered = documents()
    outdated = stale(rendered)
    if check:
        for path in outdated:
            console.print(f"[red]out of date:[/] {path.relative_to(REPO_ROOT)}")
        if outdated:
            console.print("Run `registry docs` and commit the result.")
            raise typer.Exit(1)
        console.print(f"{len(rendered)} documents up to date.")
        return
    for path in outdated:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered[path])
        console.print(f"wrote {path.relative_to(REPO_ROOT)}")
    console.print(f"{len(rendered)} documents, {len(outdated)} changed.")
