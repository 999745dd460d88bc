"""Period versions: the snapshot publisher recomputes only the periods that changed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "period_versions",
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "period"),
    )
    # Every period that has counters already: a publisher that starts on this database computes it once.
    op.execute("INSERT INTO period_versions (scope, period, version) SELECT DISTINCT scope, period, 1 FROM counters")


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("period_versions")
