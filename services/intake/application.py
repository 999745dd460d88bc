"""Intake's use cases: what the HTTP API and the Kafka handlers call. Each is one database transaction;
every event it causes is written to the outbox in that transaction and the relay is woken after it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from prometheus_client import Counter
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.crypto import Purpose, Sealer, registry_pseudonymiser
from services.intake.domain.drafts import DraftContent, DraftUpdate, NewDraft, SubmitDraft, assemble, draft_labels
from services.intake.domain.identity import IdentityError, NationalIdentity, parse_national_id
from services.intake.domain.receipts import (
    ReceiptState,
    decided_receipt,
    received_receipt,
    refused_receipt,
    should_apply,
)
from services.intake.domain.reservations import (
    ChildRequest,
    ReservationRequest,
    ReservationStatus,
    registered_event,
    staff_id,
    withdrawn_event,
)
from services.intake.domain.submissions import (
    Issue,
    Precedent,
    Refused,
    canonical,
    check_submission,
    parse_submission,
    received_event,
    schema_issues,
    supersession,
)
from services.intake.groupcommit import GroupCommit
from services.intake.known import Known
from services.intake.settings import IntakeSettings
from services.intake.storage import (
    Database,
    Draft,
    ProcessedMessage,
    Reservation,
    Submission,
    VaultEntry,
    active_reservation,
    add_outbox,
    add_to_vault,
    drafts_page,
    in_outbox,
    latest_reservation,
    receipts_page,
    tumour_history,
    vault_entry,
)
from shared.auth import Principal
from shared.db import claim_new
from shared.events import (
    Finding,
    ReceiptStatus,
    SubmissionRejected,
    SubmissionValidated,
)
from shared.events.base import utcnow
from shared.events.forms import FormType
from shared.events.submissions import Channel, HospitalSubmission
from shared.hospitals import BY_ID
from shared.kafka import Delivery
from shared.observability.logging import log_extra
from shared.observability.metrics import count_consumed
from shared.pseudonym import Pseudonymiser
from shared.settings import key_bytes
from shared.topics import RECEIPTS, RESERVATIONS, SUBMISSIONS_RECEIVED

log = logging.getLogger(__name__)

SUBMISSIONS_TOTAL = Counter(
    "intake_submissions_total",
    "Submissions by outcome: received (new), duplicate (same id and body again), conflict (same id, other"
    " body), refused (intake could not register it).",
    ["hospital", "form_type", "outcome"],
)
DECISIONS_CONSUMER = "intake.decisions"

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class Forbidden(Exception):
    """The principal may not act for that hospital (HTTP 403)."""


class NotFound(Exception):
    """HTTP 404."""


class Conflict(Exception):
    """The request contradicts what is stored (HTTP 409)."""


class PreconditionFailed(Exception):
    """The draft changed since the version the client holds (HTTP 412)."""


# --- what the use cases return (the API's response models) --------------------------------------------


class Receipt(BaseModel):
    submission_id: uuid.UUID
    hospital_id: str
    form_type: FormType
    tumour_ref: str
    status: ReceiptStatus
    received_at: datetime
    decided_at: datetime | None = None
    findings: tuple[Finding, ...] = ()
    report_id: uuid.UUID  # the report this submission is a version of: its own id, unless it is a correction
    supersedes: uuid.UUID | None = None  # the submission it corrects
    channel: Channel


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class DraftSummary(BaseModel):
    draft_id: uuid.UUID
    hospital_id: str
    form_type: FormType | None
    tumour_ref: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class DraftView(DraftSummary):
    content: DraftContent


class ReservationView(BaseModel):
    reservation_id: uuid.UUID
    status: ReservationStatus
    recorded_by: str
    effective_at: datetime
    registered_at: datetime
    withdrawn_by: str | None = None
    withdrawn_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A record of the hospital inbound topic, decoded just far enough to answer it."""

    raw: bytes
    submission_id: uuid.UUID
    hospital_id: str
    form_type: FormType


class _FormTag(BaseModel):
    form_type: FormType


class _Addressed(BaseModel):
    """Just enough of a hospital's message to address an answer to; everything else is ignored here."""

    submission_id: uuid.UUID
    hospital_id: str
    form: _FormTag


def decode_inbound(value: bytes) -> InboundMessage:
    """The inbound topic's decoder. What has no submission id, known hospital and form type to answer to
    raises (and becomes a sealed dead letter); everything else is answered with a receipt."""
    addressed = _Addressed.model_validate_json(value)  # pydantic's parser: also safe from deep nesting
    if addressed.hospital_id not in BY_ID:
        raise ValueError("hospital_id names no known hospital")
    return InboundMessage(value, addressed.submission_id, addressed.hospital_id, addressed.form.form_type)


def _receipt(row: Submission) -> Receipt:
    return Receipt(
        submission_id=row.submission_id,
        hospital_id=row.hospital_id,
        form_type=FormType(row.form_type),
        tumour_ref=row.tumour_ref,
        status=ReceiptStatus(row.status),
        received_at=row.received_at,
        decided_at=row.decided_at,
        findings=tuple(Finding.model_validate(f) for f in row.findings),
        report_id=row.report_id,
        supersedes=row.supersedes,
        channel=Channel(row.channel),
    )


def _reservation(row: Reservation) -> ReservationView:
    return ReservationView(
        reservation_id=row.reservation_id,
        status=ReservationStatus(row.status),
        recorded_by=row.recorded_by,
        effective_at=row.effective_at,
        registered_at=row.registered_at,
        withdrawn_by=row.withdrawn_by,
        withdrawn_at=row.withdrawn_at,
    )


def _hospital_label(hospital_id: str) -> str:
    return hospital_id if hospital_id in BY_ID else "unknown"  # bounded label values


def encode_cursor(at: datetime, ident: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{ident}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(at), uuid.UUID(ident)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Refused([Issue("cursor", "is not a cursor this API issued")]) from None


def parse_strict(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body, strict=True)
    except ValidationError as error:
        raise Refused(schema_issues(error)) from None


def authorize(principal: Principal, hospital_id: str) -> None:
    if not principal.may_see(hospital_id):
        raise Forbidden(f"this token may not act for hospital {hospital_id!r}")


class Intake:
    def __init__(
        self,
        settings: IntakeSettings,
        db: Database,
        notify: Callable[[], None],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._db = db
        self._notify = notify  # wakes the outbox relay
        self._clock = clock
        pseudonym_key = key_bytes(settings.pseudonym_key)
        self._pseudonymise = registry_pseudonymiser(pseudonym_key)
        self._digest = Pseudonymiser(pseudonym_key, "intake-message-digest")
        self._vault = Sealer(key_bytes(settings.vault_key), Purpose.VAULT)
        self._drafts = Sealer(key_bytes(settings.vault_key), Purpose.DRAFTS)
        # HTTP submissions arriving together share a transaction (and its commit): see groupcommit.py.
        self._http_group: GroupCommit[tuple[HospitalSubmission, NationalIdentity], tuple[Submission, bool]] = (
            GroupCommit(db, self._register_http)
        )

    # --- submissions --------------------------------------------------------------------------------

    async def submit(self, body: bytes, principal: Principal) -> tuple[Receipt, bool]:
        """Register a message from the HTTP API; `True` when it is new (202), `False` for a resend (200)."""
        with _counted():
            submission = parse_submission(body)
        authorize(principal, submission.hospital_id)
        with _counted(submission) as counted:
            identity = self._check(submission)
            row, created = await self._http_group.register((submission, identity))
            counted.created = created
        if created:
            _log_registered(row)
            self._notify()
        return _receipt(row), created

    async def _register_http(
        self, session: AsyncSession, requests: Sequence[tuple[HospitalSubmission, NationalIdentity]]
    ) -> list[tuple[Submission, bool] | Exception]:
        """A group of HTTP submissions in one transaction; a refused or conflicting one fails alone."""
        known = await Known.load(session, [(s, self._pseudonymise(i.number)) for s, i in requests])
        results: list[tuple[Submission, bool] | Exception] = []
        for submission, identity in requests:
            try:
                results.append(await self._register(session, submission, identity, Channel.HTTP, known=known))
            except (Refused, Conflict) as refused:
                results.append(refused)
        return results

    def _identify(self, national_id: str, field: str) -> NationalIdentity:
        try:
            return parse_national_id(
                national_id, today=self._clock().date(), accept_synthetic=self._settings.accept_synthetic_ids
            )
        except IdentityError as error:
            raise Refused([Issue(field, error.reason, "INVALID_NATIONAL_ID")]) from None

    def _check(self, submission: HospitalSubmission) -> NationalIdentity:
        """The rules that need nothing stored; raises `Refused`."""
        identity = self._identify(submission.patient.national_id, "patient.national_id")
        issues = check_submission(
            submission,
            identity,
            now=self._clock(),
            clock_skew=timedelta(seconds=self._settings.clock_skew_s),
            hospitals=BY_ID,
        )
        if issues:
            raise Refused(issues)
        return identity

    async def _register(
        self,
        session: AsyncSession,
        submission: HospitalSubmission,
        identity: NationalIdentity,
        channel: Channel,
        draft_id: uuid.UUID | None = None,
        known: Known | None = None,
    ) -> tuple[Submission, bool]:
        """Store the submission, its child in the vault and its events in the outbox. Raises `Refused` or
        `Conflict` before it writes anything, so a caller's batch transaction stays clean. `known`: what the
        batch read up front (`Known.load`), instead of three queries for this submission."""
        digest = self._digest(canonical(submission))
        if known is not None and known.has_submission(submission.submission_id):
            existing = known.submissions[submission.submission_id]
        else:
            existing = await session.get(Submission, submission.submission_id)
        if existing is not None:
            if existing.request_digest == digest:
                return existing, False
            raise Conflict(f"submission {submission.submission_id} was already received with a different content")
        pseudonym = self._pseudonymise(identity.number)
        form = submission.form
        if known is not None and known.has_history(submission.hospital_id, form.tumour_ref):
            history: Sequence[Submission] = known.histories[submission.hospital_id, form.tumour_ref]
        else:
            history = await tumour_history(session, submission.hospital_id, form.tumour_ref)
        lineage, issues = supersession(
            submission,
            pseudonym,
            [
                Precedent(
                    h.submission_id, h.child_pseudonym, FormType(h.form_type), h.made_at, h.report_id, h.supersedes
                )
                for h in history
            ],
        )
        if issues:
            raise Refused(issues)

        now = self._clock()
        if known is not None:
            # Read in the batch's serialised transaction, so exact: the entry joins the batch's one flush.
            if pseudonym not in known.vault:
                session.add(self._vault_entry(identity, pseudonym, now))
        elif await vault_entry(session, pseudonym) is None:
            await add_to_vault(session, self._vault_entry(identity, pseudonym, now))
        event = received_event(submission, identity, pseudonym, lineage, channel, now)
        row = Submission(
            submission_id=submission.submission_id,
            hospital_id=submission.hospital_id,
            form_type=form.form_type,
            form_version=submission.form_version,
            tumour_ref=form.tumour_ref,
            child_pseudonym=pseudonym,
            form=form.model_dump(mode="json"),
            made_at=submission.made_at,
            received_at=now,
            channel=channel.value,
            request_digest=digest,
            report_id=lineage.report_id,
            supersedes=lineage.supersedes,
            draft_id=draft_id,
            event_id=event.event_id,
            status=ReceiptStatus.RECEIVED.value,
            findings=[],
        )
        session.add(row)
        add_outbox(session, SUBMISSIONS_RECEIVED.name, pseudonym, event, now)
        receipt = received_receipt(submission.submission_id, submission.hospital_id, FormType(form.form_type), now)
        add_outbox(session, RECEIPTS.name, submission.hospital_id, receipt, now)
        if known is not None:
            known.add(row)  # later submissions of the batch see this one; the commit writes them all at once
        else:
            await session.flush()  # a second message with this id in the same batch must find this one
        return row, True

    def _vault_entry(self, identity: NationalIdentity, pseudonym: str, now: datetime) -> VaultEntry:
        return VaultEntry(
            pseudonym=pseudonym,
            national_id_sealed=self._vault.seal(identity.number.encode()).decode(),
            birth_date=identity.birth_date,
            sex=identity.sex.value,
            kind=identity.kind.value,
            created_at=now,
        )

    # --- receipts -----------------------------------------------------------------------------------

    async def receipt(self, submission_id: uuid.UUID, principal: Principal) -> Receipt:
        async with self._db.sessions() as session:
            row = await session.get(Submission, submission_id)
        if row is None:
            raise NotFound(f"no submission {submission_id}")
        authorize(principal, row.hospital_id)
        return _receipt(row)

    async def receipts(
        self,
        principal: Principal,
        *,
        hospital_id: str | None,
        status: ReceiptStatus | None,
        received_from: datetime | None,
        received_before: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> Page[Receipt]:
        hospital_id = self._scope(principal, hospital_id)
        limit = min(limit, self._settings.receipts_page_max)
        async with self._db.sessions() as session:
            rows = await receipts_page(
                session,
                hospital_id=hospital_id,
                status=status,
                received_from=received_from,
                received_before=received_before,
                after=decode_cursor(cursor) if cursor else None,
                limit=limit,
            )
        next_cursor = encode_cursor(rows[-1].received_at, rows[-1].submission_id) if len(rows) == limit else None
        return Page[Receipt](items=[_receipt(row) for row in rows], next_cursor=next_cursor)

    @staticmethod
    def _scope(principal: Principal, hospital_id: str | None) -> str | None:
        """The hospital a listing covers: a hospital token sees its own; staff see one or all."""
        if hospital_id is None:
            return principal.hospital_id
        authorize(principal, hospital_id)
        return hospital_id

    # --- drafts ---------------------------------------------------------------------------------------

    async def create_draft(self, body: bytes, principal: Principal) -> DraftView:
        request = parse_strict(NewDraft, body)
        authorize(principal, request.hospital_id)
        now = self._clock()
        form_type, tumour_ref = draft_labels(request.content)
        draft = Draft(
            draft_id=uuid.uuid4(),
            hospital_id=request.hospital_id,
            version=1,
            content_sealed=self._seal_draft(request.content),
            form_type=form_type,
            tumour_ref=tumour_ref,
            created_at=now,
            updated_at=now,
        )
        async with self._db.transaction() as session:
            session.add(draft)
        return self._draft_view(draft, request.content)

    async def draft(self, draft_id: uuid.UUID, principal: Principal) -> DraftView:
        async with self._db.sessions() as session:
            draft = await self._own_draft(session, draft_id, principal)
        return self._draft_view(draft, self._open_draft(draft))

    async def drafts(
        self, principal: Principal, *, hospital_id: str | None, cursor: str | None, limit: int
    ) -> Page[DraftSummary]:
        hospital_id = self._scope(principal, hospital_id)
        limit = min(limit, self._settings.receipts_page_max)
        async with self._db.sessions() as session:
            rows = await drafts_page(
                session, hospital_id=hospital_id, after=decode_cursor(cursor) if cursor else None, limit=limit
            )
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].draft_id) if len(rows) == limit else None
        return Page[DraftSummary](items=[self._draft_summary(row) for row in rows], next_cursor=next_cursor)

    async def update_draft(
        self, draft_id: uuid.UUID, body: bytes, principal: Principal, if_match: int | None
    ) -> DraftView:
        request = parse_strict(DraftUpdate, body)
        async with self._db.transaction() as session:
            draft = await self._own_draft(session, draft_id, principal)
            if if_match is not None and if_match != draft.version:
                raise PreconditionFailed(f"the draft is at version {draft.version}, not {if_match}")
            draft.content_sealed = self._seal_draft(request.content)
            draft.form_type, draft.tumour_ref = draft_labels(request.content)
            draft.version += 1
            draft.updated_at = self._clock()
        return self._draft_view(draft, request.content)

    async def delete_draft(self, draft_id: uuid.UUID, principal: Principal) -> None:
        async with self._db.transaction() as session:
            await session.delete(await self._own_draft(session, draft_id, principal))

    async def submit_draft(self, draft_id: uuid.UUID, body: bytes, principal: Principal) -> tuple[Receipt, bool]:
        """The draft becomes a submission and is deleted, in one transaction. Submitting it again with the
        same submission id returns the receipt (the draft is gone by then)."""
        request = parse_strict(SubmitDraft, body)
        async with self._db.transaction(serialised=True) as session:
            existing = await session.get(Submission, request.submission_id)
            if existing is not None:
                authorize(principal, existing.hospital_id)
                if existing.draft_id != draft_id:
                    raise Conflict(f"submission {request.submission_id} exists and was not made from this draft")
                return _receipt(existing), False
            draft = await self._own_draft(session, draft_id, principal)
            with _counted(hospital_id=draft.hospital_id, form_type=draft.form_type):
                submission = assemble(
                    self._open_draft(draft),
                    submission_id=request.submission_id,
                    hospital_id=draft.hospital_id,
                    updated_at=draft.updated_at,
                )
            with _counted(submission) as counted:
                identity = self._check(submission)
                row, counted.created = await self._register(session, submission, identity, Channel.HTTP, draft_id)
            await session.delete(draft)
        _log_registered(row)
        self._notify()
        return _receipt(row), True

    async def _own_draft(self, session: AsyncSession, draft_id: uuid.UUID, principal: Principal) -> Draft:
        draft = await session.get(Draft, draft_id)
        if draft is None:
            raise NotFound(f"no draft {draft_id}")
        authorize(principal, draft.hospital_id)
        return draft

    def _seal_draft(self, content: DraftContent) -> str:
        return self._drafts.seal(content.to_json()).decode()

    def _open_draft(self, draft: Draft) -> DraftContent:
        return DraftContent.from_json(self._drafts.open(draft.content_sealed.encode()))

    @staticmethod
    def _draft_summary(draft: Draft) -> DraftSummary:
        return DraftSummary(
            draft_id=draft.draft_id,
            hospital_id=draft.hospital_id,
            form_type=FormType(draft.form_type) if draft.form_type else None,
            tumour_ref=draft.tumour_ref,
            version=draft.version,
            created_at=draft.created_at,
            updated_at=draft.updated_at,
        )

    def _draft_view(self, draft: Draft, content: DraftContent) -> DraftView:
        return DraftView(**self._draft_summary(draft).model_dump(), content=content)

    # --- reservations (registry staff) ----------------------------------------------------------------

    async def register_reservation(self, body: bytes, principal: Principal) -> tuple[ReservationView, bool]:
        """Register the family's reservation; the child's active one is returned if there is one."""
        request = parse_strict(ReservationRequest, body)
        identity = self._identify(request.national_id, "national_id")
        pseudonym = self._pseudonymise(identity.number)
        now = self._clock()
        async with self._db.transaction(serialised=True) as session:
            active = await active_reservation(session, pseudonym)
            if active is not None:
                return _reservation(active), False
            if await vault_entry(session, pseudonym) is None:
                await add_to_vault(session, self._vault_entry(identity, pseudonym, now))
            recorded_by = staff_id(principal.name)
            row = Reservation(
                reservation_id=uuid.uuid4(),
                child_pseudonym=pseudonym,
                status=ReservationStatus.ACTIVE.value,
                recorded_by=recorded_by,
                effective_at=request.effective_at or now,
                registered_at=now,
            )
            session.add(row)
            event = registered_event(row.reservation_id, pseudonym, recorded_by, row.effective_at, now)
            add_outbox(session, RESERVATIONS.name, pseudonym, event, now)
        self._notify()
        return _reservation(row), True

    async def withdraw_reservation(self, body: bytes, principal: Principal) -> ReservationView:
        request = parse_strict(ChildRequest, body)
        pseudonym = self._pseudonymise(self._identify(request.national_id, "national_id").number)
        now = self._clock()
        async with self._db.transaction(serialised=True) as session:
            row = await active_reservation(session, pseudonym)
            if row is None:
                raise NotFound("this child has no active reservation")
            row.status = ReservationStatus.WITHDRAWN.value
            row.withdrawn_by = staff_id(principal.name)
            row.withdrawn_at = now
            event = withdrawn_event(row.reservation_id, pseudonym, row.withdrawn_by, now)
            add_outbox(session, RESERVATIONS.name, pseudonym, event, now)
        self._notify()
        return _reservation(row)

    async def reservation(self, body: bytes) -> ReservationView:
        """The child's latest reservation, active or withdrawn."""
        request = parse_strict(ChildRequest, body)
        pseudonym = self._pseudonymise(self._identify(request.national_id, "national_id").number)
        async with self._db.sessions() as session:
            row = await latest_reservation(session, pseudonym)
        if row is None:
            raise NotFound("this child has no reservation")
        return _reservation(row)

    # --- consumed events ------------------------------------------------------------------------------

    async def apply_decisions(self, batch: Sequence[Delivery[SubmissionValidated | SubmissionRejected]]) -> None:
        """Validation decided: move the receipts and announce them, once per decision event."""
        changed = False
        async with self._db.transaction() as session:
            new = await claim_new(session, ProcessedMessage, DECISIONS_CONSUMER, [d.event.event_id for d in batch])
            # The batch's submissions in one query: `_decide`'s `session.get` then finds them in the session
            # (held here: the session's identity map only keeps objects something refers to).
            loaded = await Known.load_submissions(
                session, {d.event.submission_id for d in batch if d.event.event_id in new}
            )
            outcomes = []
            for delivery in batch:
                event = delivery.event
                outcomes.append((delivery.topic, event.event_id in new))
                if event.event_id in new:
                    new.discard(event.event_id)
                    changed |= await self._decide(session, event)
            del loaded
        count_consumed("intake", outcomes)
        if changed:
            self._notify()

    async def _decide(self, session: AsyncSession, event: SubmissionValidated | SubmissionRejected) -> bool:
        row = await session.get(Submission, event.submission_id)
        if row is None:
            log.warning(
                "decision %s about submission %s unknown to intake: skipped", event.event_id, event.submission_id
            )
            return False
        status = ReceiptStatus.ACCEPTED if isinstance(event, SubmissionValidated) else ReceiptStatus.REJECTED
        current = ReceiptState(ReceiptStatus(row.status), row.decided_at)
        if not should_apply(current, status, event.occurred_at):
            return False
        row.status = status.value
        row.decided_at = event.occurred_at
        row.findings = [finding.model_dump(mode="json") for finding in event.findings]
        receipt = decided_receipt(
            event.event_id,
            row.submission_id,
            row.hospital_id,
            FormType(row.form_type),
            status,
            row.received_at,
            event.occurred_at,
            event.findings,
        )
        add_outbox(session, RECEIPTS.name, row.hospital_id, receipt, self._clock())
        return True

    async def apply_inbound(
        self, batch: Sequence[Delivery[InboundMessage]]
    ) -> list[tuple[Delivery[InboundMessage], str]]:
        """Register the hospitals' messages from the inbound topic as the HTTP API would, and answer each on
        the receipts topic (through the outbox). Returns the deliveries to dead-letter, with why: those not
        produced as the hospital they name, and reuses of a submission id for another content. A resend of
        a registered message is answered by the receipts already on the topic."""
        unanswerable: list[tuple[Delivery[InboundMessage], str]] = []
        registered: list[Submission] = []
        # Parsed and checked first (no database), so the batch's lookups are three queries (`Known`).
        parsed: dict[int, HospitalSubmission | Refused] = {}
        for index, delivery in enumerate(batch):
            message = delivery.event
            if _header(delivery, "hospital-id") != message.hospital_id or delivery.key != message.hospital_id.encode():
                continue  # not answered, so not parsed (below)
            try:
                with _counted(hospital_id=message.hospital_id, form_type=message.form_type):
                    if len(message.raw) > self._settings.max_body_bytes:
                        limit = self._settings.max_body_bytes
                        raise Refused([Issue("<body>", f"exceeds the limit of {limit} bytes", "TOO_LARGE")])
                    parsed[index] = parse_submission(message.raw)
            except Refused as refused:
                parsed[index] = refused
        async with self._db.transaction(serialised=True) as session:
            identified: dict[int, tuple[HospitalSubmission, NationalIdentity]] = {}
            for index, submission in parsed.items():
                if isinstance(submission, HospitalSubmission):
                    with contextlib.suppress(Refused):  # refused again, and counted, below
                        identity = self._identify(submission.patient.national_id, "patient.national_id")
                        identified[index] = (submission, identity)
            known = await Known.load(
                session,
                [(submission, self._pseudonymise(identity.number)) for submission, identity in identified.values()],
            )
            for index, delivery in enumerate(batch):
                message = delivery.event
                producer = _header(delivery, "hospital-id")
                if producer != message.hospital_id or delivery.key != message.hospital_id.encode():
                    unanswerable.append((delivery, "the hospital-id header, the key and hospital_id disagree"))
                    continue
                try:
                    submission = parsed[index]
                    if isinstance(submission, Refused):
                        raise submission
                    with _counted(submission) as counted:
                        identity = self._check(submission)
                        row, counted.created = await self._register(
                            session, submission, identity, Channel.KAFKA, known=known
                        )
                    if counted.created:
                        registered.append(row)
                except Refused as refused:
                    now = self._clock()
                    digest = self._digest(message.raw.hex())
                    receipt = refused_receipt(
                        message.submission_id, message.hospital_id, message.form_type, digest, now, refused.issues
                    )
                    if not await in_outbox(session, receipt.event_id):  # not when the message is redelivered
                        add_outbox(session, RECEIPTS.name, message.hospital_id, receipt, now)
                except Conflict as conflict:
                    unanswerable.append((delivery, str(conflict)))
        for row in registered:
            _log_registered(row)
        if len(unanswerable) < len(batch):
            self._notify()
        return unanswerable


class _Count:
    created: bool | None = None  # set when the submission was registered (True) or was a resend (False)


@contextmanager
def _counted(
    submission: HospitalSubmission | None = None, *, hospital_id: str | None = None, form_type: str | None = None
) -> Iterator[_Count]:
    """Count in `intake_submissions_total` how registering a submission (or parsing one) ended."""
    if submission is not None:
        hospital_id, form_type = submission.hospital_id, submission.form.form_type
    labels = (_hospital_label(hospital_id or ""), form_type or "unknown")
    count = _Count()
    try:
        yield count
    except Refused:
        SUBMISSIONS_TOTAL.labels(*labels, "refused").inc()
        raise
    except Conflict:
        SUBMISSIONS_TOTAL.labels(*labels, "conflict").inc()
        raise
    if count.created is not None:
        SUBMISSIONS_TOTAL.labels(*labels, "received" if count.created else "duplicate").inc()


def _log_registered(row: Submission) -> None:
    fields = log_extra(
        submission_id=str(row.submission_id),
        hospital_id=row.hospital_id,
        form_type=row.form_type,
        channel=row.channel,
        report_id=str(row.report_id),
        supersedes=str(row.supersedes) if row.supersedes else None,
    )
    log.info("submission %s registered", row.submission_id, extra=fields)


def _header(delivery: Delivery[InboundMessage], name: str) -> str | None:
    for key, value in delivery.headers:
        if key == name:
            return value.decode(errors="replace")
    return None
