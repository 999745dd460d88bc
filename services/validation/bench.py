"""`python -m services.validation.bench`: coding, checking and handler throughput on one core, printed.

Targets (issue #4): at least 100,000 codings per second and 20,000 full check runs per second. The
handler figure adds what a consumed batch costs besides the checks: the processed-ids claim, the
tumour query and writes on SQLite, and encoding the outcome events (the broker is left out).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from faststream.kafka import KafkaBroker

from services.validation.app import MIGRATIONS
from services.validation.application import Validation
from services.validation.domain import Case, KnownTumour, ReferenceData, assess, load_reference
from services.validation.domain.reference import site_of, topography_of
from shared.db import create_engine, session_factory
from shared.db.migrations import upgrade
from shared.events import Child, DiagnosisForm, FollowUpForm, SubmissionReceived, TreatmentForm
from shared.events.forms import Sex
from shared.kafka import Delivery

CODINGS_TARGET = 100_000
CHECKS_TARGET = 20_000


def codes(ref: ReferenceData, count: int, rng: random.Random) -> list[tuple[int, int, int]]:
    """Random codes: a site from ICD-O-3, mostly a histology the ICCC table names, any behaviour."""
    sites = sorted(ref.checks.topographies)
    named = sorted(set().union(*(rule.histologies or () for rule in ref.iccc.rules)))
    valid = sorted(ref.checks.behaviours_by_histology)
    return [
        (
            rng.choice(sites),
            rng.choice(named if rng.random() < 0.8 else valid),
            rng.choice((3, 3, 3, 3, 0, 1, 2)),
        )
        for _ in range(count)
    ]


def coherent_codes(ref: ReferenceData, count: int, rng: random.Random) -> list[tuple[int, int, int]]:
    """Codes as diagnoses mostly are: a malignant histology of an ICCC row, in a site the IARC site/histology
    check expects for it (or one the row names)."""
    tables = ref.checks
    histologies = sorted(
        h
        for rule in ref.iccc.rules
        if rule.code is not None
        for h in rule.histologies or ()
        if 3 in tables.behaviours_by_histology.get(h, ())
    )
    sites = sorted(tables.topographies)
    result: list[tuple[int, int, int]] = []
    while len(result) < count:
        histology = rng.choice(histologies)
        profile = tables.site_profiles.get(histology)
        candidates = sorted(profile.sites & tables.topographies) if profile and profile.must else sites
        site = rng.choice(candidates)
        if ref.iccc.code(site, histology, 3) is not None:
            result.append((site, histology, 3))
    return result


def cases(ref: ReferenceData, count: int, rng: random.Random, coherent: bool) -> list[tuple[Case, list[KnownTumour]]]:
    """70 % diagnoses, 20 % treatments, 10 % follow-ups, each child with a known tumour. `coherent`: forms
    as hospitals mostly send them; otherwise random codes, grades, bases and sexes (many findings)."""
    result = []
    sample = coherent_codes(ref, count, rng) if coherent else codes(ref, count, rng)
    for n, (site, histology, behaviour) in enumerate(sample):
        birth = date(2006, 1, 1) + timedelta(days=rng.randrange(6000))
        diagnosed = birth + timedelta(days=rng.randrange(30, 6500))
        sex = rng.choice((Sex.MALE, Sex.FEMALE))
        tumour = KnownTumour("ous", "T1", "C71", 16, diagnosed, uuid.uuid4())
        kind = rng.random()
        form: DiagnosisForm | TreatmentForm | FollowUpForm
        if kind < 0.7:
            form = DiagnosisForm(
                tumour_ref=f"T{n % 3}",
                sex=sex if coherent else rng.choice((Sex.MALE, Sex.FEMALE)),
                diagnosis_date=diagnosed,
                topography=topography_of(site),
                morphology=f"{histology:04d}",
                behaviour=behaviour,
                grade=9 if coherent else rng.choice((9, 9, 9, 1, 2, 3, 4, 5, 6)),
                basis=rng.choice((7, 7, 7, 5, 6)) if coherent else rng.choice((7, 7, 7, 5, 6, 2, 1, 0, 9)),
            )
        elif kind < 0.9:
            form = TreatmentForm(
                tumour_ref=rng.choice(("T1", "T1", "T1", "T9")),
                modality="chemotherapy",
                start_date=diagnosed + timedelta(days=rng.randrange(-5, 60)),
            )
        else:
            form = FollowUpForm(
                tumour_ref="T1", last_contact_date=diagnosed + timedelta(days=rng.randrange(400)), vital_status="alive"
            )
        result.append((Case(uuid.uuid4(), "ous", birth, sex, form, diagnosed + timedelta(days=90)), [tumour]))
    return result


def rate(label: str, count: int, run: Callable[[], Any], target: int | None = None) -> float:
    # The inputs are built up front, tens of thousands at once: keep the collector from walking them
    # again and again while timing (a service holds one batch, not the whole benchmark).
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    run()
    per_second = count / (time.perf_counter() - started)
    verdict = "" if target is None else f"  (target {target:,}: {'met' if per_second >= target else 'NOT met'})"
    gc.unfreeze()
    print(f"{label:<52} {per_second:>10,.0f} /s{verdict}")
    return per_second


def _code_all(sample: Sequence[tuple[Any, Any, int]], code: Callable[..., Any]) -> None:
    for item in sample:
        code(*item)


def _assess_all(runs: Sequence[tuple[Case, list[KnownTumour]]], ref: ReferenceData) -> None:
    for case, known in runs:
        assess(case, known, ref)


class NoBroker:
    """Publishing is measured elsewhere (shared.kafka.producer); here the events are encoded only."""

    async def publish(self, message: bytes, *_: Any, **__: Any) -> None:
        return None


async def handler_rate(
    ref: ReferenceData, messages: int, batch_size: int, rng: random.Random, database_url: str | None
) -> float:
    with tempfile.TemporaryDirectory() as directory:
        engine = create_engine(database_url or f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}")
        await upgrade(engine, MIGRATIONS)
        validation = Validation(
            session_factory(engine),
            cast(KafkaBroker, NoBroker()),
            ref,
            source_topic="received",
            validated_topic="validated",
            rejected_topic="rejected",
        )
        sample = cases(ref, messages, rng, coherent=True)
        events = [_received(case, n % (messages // 3 or 1)) for n, (case, _) in enumerate(sample)]
        batches: list[Sequence[Delivery[SubmissionReceived]]] = [
            [Delivery(event, None, "received", 0, offset) for offset, event in enumerate(events[i : i + batch_size])]
            for i in range(0, len(events), batch_size)
        ]
        started = time.perf_counter()
        for batch in batches:
            await validation.handle(batch)
        elapsed = time.perf_counter() - started
        await engine.dispose()
    per_second = messages / elapsed
    label = f"handler ({engine.dialect.name}, batches of {batch_size})"
    print(f"{label:<52} {per_second:>10,.0f} /s")
    return per_second


def _received(case: Case, child: int) -> SubmissionReceived:
    moment = datetime.combine(case.reference_date, datetime.min.time(), UTC) + timedelta(hours=12)
    return SubmissionReceived(
        submission_id=case.submission_id,
        hospital_id=case.hospital_id,
        child=Child(
            pseudonym=f"{child:032d}".translate(str.maketrans("0123456789", "abcdefghij")),
            birth_date=case.birth_date,
            sex=case.legal_sex,
        ),
        form_version=1,
        form=case.form,
        made_at=moment,
        received_at=moment,
        channel="http",
        report_id=case.submission_id,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--codings", type=int, default=300_000)
    parser.add_argument("--checks", type=int, default=60_000)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument(
        "--database-url", help="an empty database for the handler run (default: a temporary SQLite file)"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)

    started = time.perf_counter()
    ref = load_reference()
    print(f"{'reference tables loaded and compiled':<52} {time.perf_counter() - started:>10.3f} s")

    sample = codes(ref, args.codings, rng)
    coder = ref.iccc
    rate("ICCC-3 codings (integers)", len(sample), lambda: _code_all(sample, coder.code), CODINGS_TARGET)
    texts = [(topography_of(s), f"{h:04d}", b) for s, h, b in sample]
    rate("ICCC-3 codings (from 'C71.6', '9470', 3)", len(texts), lambda: _code_all(texts, coder.code_text))
    assert all(coder.code(site_of(t), int(h), b) == coder.code_text(t, h, b) for t, h, b in texts[:1000])

    for coherent, label in ((True, "registry-like forms"), (False, "random codes")):
        runs = cases(ref, args.checks, rng, coherent)
        findings = sum(len(assess(c, k, ref).findings) for c, k in runs[:5000]) / min(len(runs), 5000)
        rate(
            f"full check runs, {label} ({findings:.1f} findings)",
            len(runs),
            lambda runs=runs: _assess_all(runs, ref),  # type: ignore[misc]
            CHECKS_TARGET,
        )

    asyncio.run(handler_rate(ref, args.messages, 500, rng, args.database_url))


if __name__ == "__main__":
    main()
