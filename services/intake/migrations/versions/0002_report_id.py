"""Submissions name the report they are a version of (`report_id`); a submission is corrected at most once.

Rows stored before are given the report of their chain of `supersedes` (under the rule of the time, every
form superseded the latest of its type for its tumour; those chains are kept as they were).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_submissions = sa.table(
    "submissions",
    sa.column("submission_id", sa.Uuid()),
    sa.column("supersedes", sa.Uuid()),
    sa.column("received_at", sa.DateTime(timezone=True)),
    sa.column("report_id", sa.Uuid()),
)


def upgrade() -> None:
    op.add_column("submissions", sa.Column("report_id", sa.Uuid(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_submissions.c.submission_id, _submissions.c.supersedes).order_by(
            _submissions.c.received_at, _submissions.c.submission_id
        )
    ).all()
    report: dict[object, object] = {}
    for submission_id, supersedes in rows:  # receipt order: what a row supersedes came before it
        report[submission_id] = report.get(supersedes, supersedes) if supersedes is not None else submission_id
    if report:
        connection.execute(
            sa.update(_submissions)
            .where(_submissions.c.submission_id == sa.bindparam("b_submission_id"))
            .values(report_id=sa.bindparam("b_report_id")),
            [{"b_submission_id": sid, "b_report_id": rid} for sid, rid in report.items()],
        )
    with op.batch_alter_table("submissions") as batch:
        batch.alter_column("report_id", existing_type=sa.Uuid(), nullable=False)
    op.create_index("ux_submissions_supersedes", "submissions", ["supersedes"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_submissions_supersedes", table_name="submissions")
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("report_id")
