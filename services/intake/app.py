"""Builds the intake process: the service runtime, the use cases, the outbox relay, the consumers and the
HTTP API."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fastapi import FastAPI

from services.intake import api
from services.intake.application import Intake
from services.intake.crypto import Purpose, Sealer
from services.intake.handlers import subscribe
from services.intake.outbox import OutboxRelay
from services.intake.settings import IntakeSettings
from services.intake.storage import Database
from shared.kafka import create_broker, publish_all
from shared.service import Service
from shared.settings import key_bytes
from shared.topics import ALL_TOPICS

MIGRATIONS = Path(__file__).with_name("migrations")

DESCRIPTION = """
Where hospitals and registry staff talk to the childhood cancer registry.

Hospitals submit diagnosis, treatment and follow-up forms (or keep them as drafts first) and read their
receipts; registry staff register and withdraw NOPHO-Care reservations. Authenticate with
`Authorization: Bearer <token>` (tokens from `registry tokens add`). Every error is an RFC 7807 problem.

Hospitals may instead produce the same JSON as `POST /v1/submissions` to the Kafka topic
`hospital.inbound.submissions`, keyed by their hospital id and with a `hospital-id` header naming it;
in production, broker ACLs authenticate each producer and allow it only its own principal.
Receipts are answered on `intake.receipts`.
"""


def create_app(settings: IntakeSettings) -> FastAPI:
    service = Service("intake", settings, MIGRATIONS)
    db = Database(service.sessions)
    topic_names = {spec.name: service.topic(spec) for spec in ALL_TOPICS}
    outbox_producer = create_broker(settings.kafka, client_id="intake-outbox")  # see outbox.py
    relay = OutboxRelay(
        db,
        partial(publish_all, outbox_producer),
        topic_names.__getitem__,
        producer=outbox_producer,
        batch=settings.outbox_batch,
        poll_s=settings.outbox_poll_s,
        max_backoff_s=settings.outbox_max_backoff_s,
    )
    intake = Intake(settings, db, relay.notify)
    subscribe(service, intake, Sealer(key_bytes(settings.vault_key), Purpose.DEAD_LETTERS), settings.consumer_batch)
    service.on_start.append(relay.start)
    service.on_stop.append(relay.stop)
    app = service.http_app(title="Registry intake", description=DESCRIPTION, routers=[api.router], version="1")
    api.install(app, intake, settings.max_body_bytes)
    app.state.relay = relay
    return app
