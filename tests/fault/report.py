"""Render docs/fault-results.md from the latest results the fault and bad-input suites recorded.

    python -m tests.fault.report          # render from test-artifacts/ as it is
    python -m tests.fault.report --run    # run the suites first (tests/fault, tests/fuzz, tests/security)

Each fault test writes `test-artifacts/fault/<scenario>.json` (see tests/fault/harness.py); the poison,
API and fuzz tests write `test-artifacts/bad-input/<name>.json`, the token timing tests
`test-artifacts/security/timing.json`. The page shows the latest file of each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.fault.harness import ARTIFACTS, REPO_ROOT

BAD_INPUT = ARTIFACTS.parent / "bad-input"
SECURITY = ARTIFACTS.parent / "security"
PAGE = REPO_ROOT / "docs" / "fault-results.md"
# The order the page lists the scenarios in; others follow alphabetically.
ORDER = ("kill-9", "broker-restart", "three-brokers", "postgres-restart", "rebalance")


def _load(directory: Path) -> list[dict[str, Any]]:
    if not directory.is_dir():
        return []
    return [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]


def _rank(run: dict[str, Any]) -> tuple[int, str]:
    name = run.get("scenario", run.get("name", ""))
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


def _load_held(load: dict[str, Any]) -> str:
    held = f"{load['held_rate']}/s of {load['offered_rate']:g}/s for {load['seconds']:g} s"
    if not load["retried_requests"]:
        return f"{held}; every request answered first time"
    why = ", ".join(f"{reason} ×{count}" for reason, count in load.get("retried_on", {}).items())
    return f"{held}; {load['retried_requests']} of {load['items']} requests answered on a retry ({why})"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def _fault_section(runs: list[dict[str, Any]]) -> list[str]:
    if not runs:
        return ["No fault results recorded yet: run `python -m tests.fault.report --run`.", ""]
    rows = []
    for run in runs:
        r = run["reconciliation"]
        recover = "; ".join(f"{f['fault']}: {f['recover_s']:g} s" for f in run["faults"])
        rows.append(
            [
                run["title"],
                _load_held(run["load"]),
                r["sent"],
                r["accepted"],
                r["lost"],
                r["duplicated"],
                recover,
            ]
        )
    lines = _table(
        ["fault", "load held", "messages sent", "accepted (2xx)", "lost", "duplicated", "time to recover"], rows
    )
    lines += [
        "",
        "*Messages sent*: submissions posted (synthetic load and canaries); reservations come on top.",
        "*Lost*: accepted submissions missing from validation's output, from the stats counts, or (eligible) "
        "from the Nordic sink. *Duplicated*: a submission registered or decided twice, counted twice, or a "
        "sink operation confirmed twice. *Time to recover*: from the fault's injection until a canary "
        "submission sent at that moment was accepted, validated, counted and transferred.",
        "",
        "### Each fault",
        "",
    ]
    events = [
        [run["title"] if i == 0 else "", f["fault"], f"{f['at_s']:g} s", f"{f['outage_s']:g} s", f["note"]]
        for run in runs
        for i, f in enumerate(run["faults"])
    ]
    lines += _table(["run", "fault", "injected at", "down for", "how"], events)
    lines += ["", "### Reconciliation details", ""]
    details = []
    for run in runs:
        r = run["reconciliation"]
        raw = r["raw_duplicates_total"]
        where = ", ".join(f"{topic.split('.')[-1]} {n}" for topic, n in r["raw_duplicates"].items() if n)
        details.append(
            [
                run["title"],
                f"{r['validated']} / {r['rejected']}",
                f"{raw} ({where}), dropped by event id" if raw else "0",
                r["stats_mismatches"]["count"],
                f"{r['sink_rows']} of {r['sink_expected']}",
                f"{r['reserved_children']} ({r.get('reserved_with_records', '?')} with records kept out)",
                r["order_violations"]["count"],
                r["dead_letters"],
                f"{run['converged_after_load_s']:g} s",
            ]
        )
    lines += _table(
        [
            "run",
            "validated / rejected",
            "republished events",
            "stats mismatches",
            "sink rows",
            "reserved children",
            "order violations",
            "dead letters",
            "converged after the load",
        ],
        details,
    )
    return [*lines, ""]


def _bad_input_section(results: list[dict[str, Any]]) -> list[str]:
    if not results:
        return []
    lines = ["## Bad input", ""]
    lines += _table(
        ["test", "what was sent", "outcome"],
        [[r["title"], r["sent"], r["outcome"]] for r in sorted(results, key=_rank)],
    )
    return [*lines, ""]


def _timing_section(timing: dict[str, Any]) -> list[str]:
    if not timing:
        return []
    rows = [
        [where, *(f"{medians.get(kind, 0):,.1f} µs" if medians.get(kind) is not None else "" for kind in kinds)]
        for where, medians in timing.items()
        if isinstance(medians, dict)
        for kinds in [("known, first", "known, last", "known", "near miss", "unknown")]
    ]
    lines = [
        "## Token timing",
        "",
        "Median time to authenticate (in process) or to answer (over HTTP), from interleaved samples; an "
        "early-exit lookup is measured beside the real one to show what a leak would look like.",
        "",
    ]
    lines += _table(["where", "known (compared first)", "known (compared last)", "known", "near miss", "unknown"], rows)
    return [*lines, ""]


def render() -> str:
    runs = sorted(_load(ARTIFACTS), key=_rank)
    stamps = sorted(r["recorded_at"] for r in [*runs, *_load(BAD_INPUT), *_load(SECURITY)] if "recorded_at" in r)
    lines = [
        "# Fault, load and bad-input results",
        "",
        "Generated by `python -m tests.fault.report` from the latest results of the fault suite "
        "(`tests/fault/`); `--run` runs the suites first. Each run starts the four services as processes on a "
        "real Kafka (a single broker, or three with replication factor 3 and min ISR 2) and SQLite or "
        "PostgreSQL, streams synthetic submissions at a steady rate, injects the fault, then reconciles every "
        "topic, the stats API and the Nordic sink against what the hospitals were answered. Times are wall "
        "clock on a 2-core machine shared with other work; a restarted service spends most of its time "
        "to recover starting Python and joining its consumer group.",
        "",
    ]
    lines += [
        "The suites run with everything else under `make test`; alone: `.venv/bin/pytest -m fault` (faults, "
        "poison, API abuse, fuzzing: tests/fault, tests/fuzz) and `.venv/bin/pytest -m security` (access, "
        "tokens, privacy scan, secrets: tests/security).",
        "",
    ]
    if stamps:
        lines += [f"Results recorded {stamps[0]} – {stamps[-1]}.", ""]
    timing_file = SECURITY / "timing.json"
    timing = json.loads(timing_file.read_text()) if timing_file.exists() else {}
    lines += ["## Faults under load", "", *_fault_section(runs), *_bad_input_section(_load(BAD_INPUT))]
    lines += _timing_section(timing)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run the fault, bad-input and security suites first")
    args = parser.parse_args(argv)
    if args.run:
        command = [sys.executable, "-m", "pytest", "-q", "tests/fault", "tests/fuzz", "tests/security"]
        finished = subprocess.run(command, cwd=REPO_ROOT, env=os.environ.copy(), check=False)
        if finished.returncode != 0:
            print("the fault suite failed; the page shows what it recorded", file=sys.stderr)
    PAGE.write_text(render())
    print(f"wrote {PAGE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
