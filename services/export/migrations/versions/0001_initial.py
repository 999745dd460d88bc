"""Reservations, reports, record revisions, the transfer ledger, the append-only audit log, the
delivery lease and processed-message ids.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Self-contained (no model imports), so later changes to the models cannot change what this created.
LEDGER_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def upgrade() -> None:
    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_table(
        "children",
        sa.Column("pseudonym", sa.String(64), nullable=False),
        sa.Column("reserved", sa.Boolean(), nullable=False),
        sa.Column("reservation_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("pseudonym"),
    )
    op.create_table(
        "sources",
        sa.Column("record_key", sa.String(200), nullable=False),
        sa.Column("child_pseudonym", sa.String(64), nullable=False),
        sa.Column("tumour_key", sa.String(180), nullable=False),
        sa.Column("form_type", sa.String(16), nullable=False),
        sa.Column("submission_id", sa.Uuid(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("record_key"),
    )
    op.create_index("ix_sources_child_pseudonym", "sources", ["child_pseudonym"])
    op.create_index("ix_sources_tumour_key", "sources", ["tumour_key"])
    op.create_table(
        "record_states",
        sa.Column("record_id", sa.String(32), nullable=False),
        sa.Column("child_pseudonym", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("record_id"),
    )
    op.create_index("ix_record_states_child_pseudonym", "record_states", ["child_pseudonym"])
    op.create_table(
        "ledger",
        sa.Column("id", LEDGER_ID, autoincrement=True, nullable=False),
        sa.Column("record_id", sa.String(32), nullable=False),
        sa.Column("child_pseudonym", sa.String(64), nullable=False),
        sa.Column("child_id", sa.String(32), nullable=False),
        sa.Column("operation", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("record_sha256", sa.String(64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("batch", sa.String(160), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ledger_record_id", "ledger", ["record_id"])
    op.create_index("ix_ledger_child_pseudonym", "ledger", ["child_pseudonym"])
    op.create_index("ix_ledger_status_id", "ledger", ["status", "id"])
    op.create_table(
        "audit_log",
        sa.Column("id", LEDGER_ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("legal_basis", sa.String(32), nullable=False),
        sa.Column("record_id", sa.String(32), nullable=False),
        sa.Column("child_id", sa.String(32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("record_sha256", sa.String(64), nullable=True),
        sa.Column("sink", sa.String(16), nullable=False),
        sa.Column("batch", sa.String(160), nullable=True),
        sa.Column("ledger_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_record_id", "audit_log", ["record_id"])
    op.create_index("ix_audit_log_child_id", "audit_log", ["child_id"])
    lease = op.create_table(
        "delivery_lease",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.bulk_insert(lease, [{"name": "nopho-care-delivery", "owner": None, "expires_at": EPOCH}])
    _append_only("audit_log")


def _append_only(table: str) -> None:
    """The audit log can be appended to, never changed: the database refuses UPDATE and DELETE."""
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            f"""CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{table} is append-only'; END $$"""
        )
        op.execute(
            f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"""
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"""CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}
                BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"""
            )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    for table in ("delivery_lease", "audit_log", "ledger", "record_states", "sources", "children"):
        op.drop_table(table)
    op.drop_table("processed_messages")
