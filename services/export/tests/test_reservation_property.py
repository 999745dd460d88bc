"""Reservation always wins, exactly once: random interleavings of reports (several treatment and
follow-up reports per tumour, corrections, treatments before their diagnosis), reservations,
withdrawals, redeliveries, refusals, crashes on either side of the sink's write and restarts, driven
through the real consumer use case, delivery worker and sinks on SQLite and files. Checked throughout
and at the end:
- no upsert of a child reaches the sink while export knows the child is reserved;
- whenever nothing is waiting, the sink holds exactly the latest version of every record of the
  eligible, non-reserved children, each once (file drop: no operation twice at rest);
- around every consumed batch, planning every record of every child (build, revisions, ledger plan)
  finds nothing to do: a batch plans only the records its events can change, and that is all the full
  planning would have changed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.export import application, storage
from services.export.domain import ledger
from services.export.domain.ledger import Operation
from services.export.domain.record import ExportIds, build_records
from services.export.domain.sources import Source, record_key
from services.export.sinks.filedrop import read_drop
from services.export.tests import factories as f
from services.export.tests.harness import SIGNING, Crash, Harness
from shared.events import ReservationRegistered, SubmissionValidated

# (birth date, the diagnosis dates its versions use): each child's eligibility can flip with a correction.
CHILDREN = [
    (date(2015, 6, 15), [date(2020, 3, 1), date(2020, 3, 20)]),  # in scope either way
    (date(2002, 2, 10), [date(2020, 2, 10), date(2020, 2, 9)]),  # 18 at diagnosis, or 17 the day before
    (date(2010, 5, 5), [date(2018, 12, 31), date(2019, 1, 1)]),  # the day before NOPHO-Care, or its first
]
KINDS = ("diagnosis", "treatment", "follow_up")
TUMOURS = ("T1", "T2")  # two tumours of a child: a report changes records of its own tumour only


StepKind = Literal["report", "reserve", "withdraw", "consume", "redeliver", "deliver", "restart", "retry"]


@dataclass(frozen=True)
class Step:
    kind: StepKind
    child: int = 0
    form: str = "diagnosis"
    variant: int = 0
    count: int = 1
    fault: Literal["before", "after", "refuse"] | None = None
    # A treatment or follow-up report: a correction of the child's latest such report (if there is one),
    # or a report of its own. A diagnosis always corrects the child's diagnosis, as intake decides.
    correct: bool = False
    tumour: int = 0  # of the child's TUMOURS


# Weighted towards what makes interleavings interesting: reports, reservations, consuming, delivering.
WEIGHTS: dict[StepKind, int] = {"report": 4, "reserve": 2, "withdraw": 2, "consume": 3, "deliver": 3}
WEIGHTS |= {"redeliver": 1, "restart": 1, "retry": 1}
KIND_WEIGHTS = [kind for kind, weight in WEIGHTS.items() for _ in range(weight)]


@st.composite
def steps(draw: st.DrawFn) -> Step:
    kind = draw(st.sampled_from(KIND_WEIGHTS))
    child = draw(st.integers(0, len(CHILDREN) - 1))
    if kind == "report":
        form, variant, tumour = draw(st.sampled_from(KINDS)), draw(st.integers(0, 1)), draw(st.integers(0, 1))
        return Step("report", child, form, variant, correct=draw(st.booleans()), tumour=tumour)
    if kind in ("reserve", "withdraw"):
        return Step(kind, child)
    if kind in ("consume", "redeliver"):
        return Step(kind, count=draw(st.integers(1, 4)))
    if kind == "deliver":
        return Step(kind, fault=draw(st.sampled_from([None, None, None, "before", "after", "refuse"])))
    return Step(kind)


@dataclass
class Model:
    """What export has consumed, in the simplest terms: the oracle's input."""

    reserved: set[str] = field(default_factory=set)
    reports: dict[str, SubmissionValidated] = field(default_factory=dict)  # record key -> latest

    def take(self, event: Any) -> None:
        if isinstance(event, SubmissionValidated):
            self.reports[record_key(event)] = event
        elif isinstance(event, ReservationRegistered):
            self.reserved.add(event.child_pseudonym)
        else:
            self.reserved.discard(event.child_pseudonym)

    def expected(self, ids: ExportIds) -> dict[str, dict[str, Any]]:
        """Record id -> record (without its revision) the Nordic side must hold."""
        by_child: dict[str, list[Source]] = {}
        for key, event in self.reports.items():
            by_child.setdefault(event.child.pseudonym, []).append(Source(key, event))
        wanted = {}
        for pseudonym, sources in by_child.items():
            if pseudonym in self.reserved:
                continue
            for record_id, record in build_records(sources, ids).records.items():
                wanted[record_id] = record.model_dump(mode="json", exclude={"revision"})
        return wanted


class Run:
    def __init__(self, h: Harness) -> None:
        self.h = h
        self.model = Model()
        self.produced: list[Any] = []
        self.consumed: list[Any] = []
        self.checked = 0  # operations of the current sink object already checked
        self.children = [f.child(f"prop-{i}", born) for i, (born, _) in enumerate(CHILDREN)]
        # (child, tumour, form) -> latest version made
        self.latest: dict[tuple[int, int, str], SubmissionValidated] = {}

    def event(self, step: Step) -> Any:
        who = self.children[step.child]
        if step.kind == "reserve":
            return f.reserved(who)
        if step.kind == "withdraw":
            return f.withdrawn(who)
        diagnosed = CHILDREN[step.child][1][step.variant]
        latest = self.latest.get((step.child, step.tumour, step.form))
        corrects = latest if step.form == "diagnosis" or step.correct else None
        tumour = TUMOURS[step.tumour]
        if step.form == "diagnosis":
            morphology = ("9836", "9837")[step.variant]
            event = f.diagnosis(who, diagnosed, tumour=tumour, morphology=morphology, corrects=corrects)
        elif step.form == "treatment":
            event = f.treatment(who, date(2020, 4, 1 + step.variant), tumour=tumour, corrects=corrects)
        else:
            event = f.follow_up(who, date(2021, 4, 1 + step.variant), tumour=tumour, corrects=corrects)
        self.latest[step.child, step.tumour, step.form] = event
        return event

    async def consume(self, count: int) -> None:
        batch, self.produced = self.produced[:count], self.produced[count:]
        if batch:
            await self.check_fully_planned()  # also after the worker's passes since the last batch
            await self.h.consume(*batch)
            await self.check_fully_planned()
            for event in batch:
                self.model.take(event)
            self.consumed += batch

    async def restart(self) -> None:
        await self.h.restart()
        self.checked = 0

    async def step(self, step: Step) -> None:
        if step.kind in ("report", "reserve", "withdraw"):
            self.produced.append(self.event(step))
        elif step.kind == "consume":
            await self.consume(step.count)
        elif step.kind == "redeliver":  # the consumer was sought back: the same events again
            if self.consumed:
                await self.h.consume(*self.consumed[-step.count :])
        elif step.kind == "deliver":  # the only step that changes the Nordic side: check it here
            self.h.sink.fault = step.fault
            try:
                await self.h.deliver()
            except Crash:
                self.check_never_transferred_while_reserved()
                await self.restart()
                return
            self.check_never_transferred_while_reserved()
            await self.check_at_rest()
        elif step.kind == "restart":
            await self.restart()
        else:
            await application.retry_failed(self.h.sessions)

    def check_never_transferred_while_reserved(self) -> None:
        reserved_ids = {self.h.ids.child(p) for p in self.model.reserved}
        for op in self.h.sink.delivered[self.checked :]:
            if op.operation is Operation.UPSERT:
                assert op.record_json()["child_id"] not in reserved_ids, "a reserved child's record was sent"
        self.checked = len(self.h.sink.delivered)

    async def check_fully_planned(self) -> None:
        """Planning every record of every child, as each batch once did, would change nothing."""
        async with self.h.sessions() as session:  # rolled back: loading claims the children's rows
            children = sorted({self.children[i].pseudonym for i in range(len(CHILDREN))})
            state = await storage.load_batch_state(session, children, children, ())
            records = await storage.load_records(session, children)
        sources: dict[str, list[Source]] = {p: [] for p in children}
        for key, stored in state.sources.items():
            sources[stored.child_pseudonym].append(Source(key, application.stored_report(stored.event)))
        for pseudonym in children:
            built = build_records(sources[pseudonym], self.h.ids)
            wanted, changed = ledger.assign_revisions(built.records, records.revisions)
            assert changed == {}, "a record's revision is behind its content"
            reserved = state.reserved[pseudonym]
            assert not ledger.plan({} if reserved else wanted, records.ledger[pseudonym], reserved)

    async def check_at_rest(self) -> None:
        counts = await application.status(self.h.sessions)
        if counts.pending or counts.failed:
            return
        held = await self.h.holdings()
        actual = {}
        for record_id, record in held.items():
            assert record.record["revision"] >= 1
            actual[record_id] = {k: v for k, v in record.record.items() if k != "revision"}
        assert actual == self.model.expected(self.h.ids)
        if self.h.sink_kind == "file":
            assert read_drop(self.h.directory / "drop", SIGNING.public_key()).duplicates == []

    async def settle(self) -> None:
        await self.consume(len(self.produced))
        await self.restart()
        await application.retry_failed(self.h.sessions)
        result = await self.h.deliver()
        assert not result.unavailable
        counts = await application.status(self.h.sessions)
        assert (counts.pending, counts.failed) == (0, 0)
        self.check_never_transferred_while_reserved()
        await self.check_at_rest()


async def run(template: Path, sink: Literal["sql", "file"], plan: list[Step], batch_size: int = 2) -> None:
    with tempfile.TemporaryDirectory() as directory:
        # Small delivery batches: a child's operations span passes, as under load.
        h = Harness(Path(directory), template, sink, batch_size=batch_size, max_failures=1)
        try:
            r = Run(h)
            for step in plan:
                await r.step(step)
            await r.settle()
        finally:
            await h.close()


COMMON = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@settings(COMMON, max_examples=100)
@given(plan=st.lists(steps(), min_size=1, max_size=40), batch_size=st.integers(1, 3))
async def test_reservation_always_wins_exactly_once_sql(
    export_template: Path, plan: list[Step], batch_size: int
) -> None:
    await run(export_template, "sql", plan, batch_size)


@settings(COMMON, max_examples=50)
@given(plan=st.lists(steps(), min_size=1, max_size=40), batch_size=st.integers(1, 3))
async def test_reservation_always_wins_exactly_once_file_drop(
    export_template: Path, plan: list[Step], batch_size: int
) -> None:
    await run(export_template, "file", plan, batch_size)


@pytest.mark.parametrize("sink", ["sql", "file"])
async def test_a_known_hard_interleaving(export_template: Path, sink: Literal["sql", "file"]) -> None:
    """Treatment first, delivered diagnosis, crash after the write, reservation, withdrawal, correction."""
    plan = [
        Step("report", 0, "treatment"),
        Step("report", 0, "diagnosis"),
        Step("consume", count=2),
        Step("deliver", fault="after"),
        Step("reserve", 0),
        Step("consume"),
        Step("redeliver", count=3),
        Step("deliver"),
        Step("withdraw", 0),
        Step("report", 0, "diagnosis", 1),
        Step("consume", count=2),
        Step("deliver", fault="before"),
        Step("deliver"),
    ]
    await run(export_template, sink, plan)
