"""Processed-message ids and the tumours each child has, for linkage and duplicates.

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


def upgrade() -> None:
    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_table(
        "tumours",
        sa.Column("child_pseudonym", sa.String(52), nullable=False),
        sa.Column("hospital_id", sa.String(32), nullable=False),
        sa.Column("tumour_ref", sa.String(64), nullable=False),
        sa.Column("site_group", sa.String(3), nullable=False),
        sa.Column("histology_group", sa.Integer(), nullable=True),
        sa.Column("diagnosis_date", sa.Date(), nullable=False),
        sa.Column("submission_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("child_pseudonym", "hospital_id", "tumour_ref"),
    )


def downgrade() -> None:
    op.drop_table("tumours")
    op.drop_table("processed_messages")
