"""Database plumbing every service shares: engines, the declarative base, idempotent consumption."""

from shared.db.engine import create_engine, session_factory
from shared.db.idempotency import ProcessedMessageMixin, claim_new

__all__ = ["ProcessedMessageMixin", "claim_new", "create_engine", "session_factory"]
