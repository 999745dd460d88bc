"""`registry iccc code` and `registry check`: ICCC-3 coding and the edit checks as batch commands."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from services.validation.batch import BatchInputError, check_lines, code_csv
from services.validation.domain import reference

iccc_app = typer.Typer(help="ICCC-3 coding (SEER recode, IARC 2017).", no_args_is_help=True)


@iccc_app.callback()
def iccc() -> None:
    """ICCC-3 coding (SEER recode, IARC 2017)."""  # a group, so that `code` stays a named sub-command


@iccc_app.command("code")
def code() -> None:
    """Code CSV on standard input (header `topography,morphology,behaviour`, e.g. `C71.6,9470,3`) and write
    it to standard output with `iccc_recode`, `iccc_extended`, `iccc_subgroup` and `iccc_division` added."""
    try:
        output = code_csv(sys.stdin, reference().iccc)
    except BatchInputError as exc:
        _fail(exc)
    sys.stdout.write(output)


def check() -> None:
    """Check forms read as JSON lines on standard input; write one JSON line of findings per form.

    Each line is the body of intake's submission API, with `patient.national_id`, or with
    `patient.birth_date` and `patient.sex`. Forms earlier in the input count as known for linkage."""
    try:
        results = check_lines(sys.stdin, reference())
    except BatchInputError as exc:
        _fail(exc)
    for line in results:
        sys.stdout.write(line + "\n")


def _fail(exc: BatchInputError) -> NoReturn:
    for error in exc.errors:
        typer.echo(error, err=True)
    typer.echo(f"{len(exc.errors)} malformed line(s); nothing written", err=True)
    raise typer.Exit(1)
