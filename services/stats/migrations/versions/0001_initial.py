"""Stats' projection (tumours, submissions, reminders, counters), scope versions and daily snapshots.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "counters",
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "period", "metric", "key"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "daily_snapshots",
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "day"),
    )
    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "reminders",
        sa.Column("reminder_id", sa.Uuid(), nullable=False),
        sa.Column("pseudonym", sa.String(length=64), nullable=False),
        sa.Column("hospital_id", sa.String(length=32), nullable=False),
        sa.Column("tumour_ref", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("follow_up_year", sa.SmallInteger(), nullable=True),
        sa.Column("diagnosis_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("transitions", sa.Integer(), nullable=False),
        sa.Column("changed_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("reminder_id"),
    )
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.create_index("ix_reminders_outstanding", ["status", "hospital_id", "due_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_reminders_pseudonym"), ["pseudonym"], unique=False)

    op.create_table(
        "scopes",
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("published_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope"),
    )
    op.create_table(
        "submissions",
        sa.Column("submission_id", sa.Uuid(), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("submission_id"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "tumours",
        sa.Column("pseudonym", sa.String(length=64), nullable=False),
        sa.Column("hospital_id", sa.String(length=32), nullable=False),
        sa.Column("tumour_ref", sa.String(length=64), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("diagnosed", sa.Boolean(), nullable=False),
        sa.Column("next_due_on", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("pseudonym", "hospital_id", "tumour_ref"),
    )
    with op.batch_alter_table("tumours", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tumours_next_due_on"), ["next_due_on"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("tumours", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tumours_next_due_on"))

    op.drop_table("tumours")
    op.drop_table("submissions")
    op.drop_table("scopes")
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reminders_pseudonym"))
        batch_op.drop_index("ix_reminders_outstanding")

    op.drop_table("reminders")
    op.drop_table("processed_messages")
    op.drop_table("daily_snapshots")
    op.drop_table("counters")
