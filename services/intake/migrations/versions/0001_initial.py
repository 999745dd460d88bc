"""The identity vault, submissions with their receipts, drafts, reservations, the outbox, processed ids.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "identity_vault",
        sa.Column("pseudonym", sa.String(52), nullable=False),
        sa.Column("national_id_sealed", sa.Text(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("sex", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("pseudonym"),
    )
    op.create_table(
        "submissions",
        sa.Column("submission_id", sa.Uuid(), nullable=False),
        sa.Column("hospital_id", sa.String(32), nullable=False),
        sa.Column("form_type", sa.String(16), nullable=False),
        sa.Column("form_version", sa.Integer(), nullable=False),
        sa.Column("tumour_ref", sa.String(64), nullable=False),
        sa.Column("child_pseudonym", sa.String(52), nullable=False),
        sa.Column("form", sa.JSON(), nullable=False),
        sa.Column("made_at", TIME, nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("supersedes", sa.Uuid(), nullable=True),
        sa.Column("draft_id", sa.Uuid(), nullable=True),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("decided_at", TIME, nullable=True),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["child_pseudonym"], ["identity_vault.pseudonym"]),
        sa.PrimaryKeyConstraint("submission_id"),
    )
    op.create_index("ix_submissions_chain", "submissions", ["hospital_id", "tumour_ref", "received_at"])
    op.create_index("ix_submissions_receipts", "submissions", ["hospital_id", "received_at", "submission_id"])
    op.create_index("ix_submissions_status", "submissions", ["hospital_id", "status", "received_at"])
    op.create_table(
        "drafts",
        sa.Column("draft_id", sa.Uuid(), nullable=False),
        sa.Column("hospital_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_sealed", sa.Text(), nullable=False),
        sa.Column("form_type", sa.String(16), nullable=True),
        sa.Column("tumour_ref", sa.String(64), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("draft_id"),
    )
    op.create_index("ix_drafts_hospital_id", "drafts", ["hospital_id"])
    op.create_table(
        "reservations",
        sa.Column("reservation_id", sa.Uuid(), nullable=False),
        sa.Column("child_pseudonym", sa.String(52), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("effective_at", TIME, nullable=False),
        sa.Column("registered_at", TIME, nullable=False),
        sa.Column("withdrawn_by", sa.String(64), nullable=True),
        sa.Column("withdrawn_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(["child_pseudonym"], ["identity_vault.pseudonym"]),
        sa.PrimaryKeyConstraint("reservation_id"),
    )
    op.create_index("ix_reservations_child", "reservations", ["child_pseudonym", "registered_at"])
    active = sa.text("status = 'active'")
    op.create_index(
        "ux_reservations_active",
        "reservations",
        ["child_pseudonym"],
        unique=True,
        sqlite_where=active,
        postgresql_where=active,
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(128), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("sent_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    unsent = sa.text("sent_at IS NULL")
    op.create_index("ix_outbox_unsent", "outbox", ["seq"], sqlite_where=unsent, postgresql_where=unsent)
    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", TIME, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )


def downgrade() -> None:
    op.drop_table("processed_messages")
    op.drop_table("outbox")
    op.drop_table("reservations")
    op.drop_table("drafts")
    op.drop_table("submissions")
    op.drop_table("identity_vault")
