"""Reminders in their tumours' facts: a batch reads a tumour's reminders with the tumour, not by a query
of their own. The reminders table stays, as what the API and the gauges query.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_tumours = sa.table(
    "tumours",
    sa.column("pseudonym", sa.String),
    sa.column("hospital_id", sa.String),
    sa.column("tumour_ref", sa.String),
    sa.column("facts", sa.Text),
    sa.column("diagnosed", sa.Boolean),
    sa.column("next_due_on", sa.Date),
)
_reminders = sa.table(
    "reminders",
    sa.column("pseudonym", sa.String),
    sa.column("hospital_id", sa.String),
    sa.column("tumour_ref", sa.String),
    sa.column("kind", sa.String),
    sa.column("follow_up_year", sa.SmallInteger),
    sa.column("status", sa.String),
    sa.column("diagnosis_date", sa.Date),
    sa.column("due_date", sa.Date),
    sa.column("transitions", sa.Integer),
    sa.column("changed_on", sa.Date),
)
# A tumour with reminders but no facts (one a rebuild did not bring back) is kept bare.
_BARE = {
    "diagnosis": None,
    "diagnosis_reported_on": None,
    "treatment_reported_on": None,
    "follow_ups": [],
    "tallies": [],
    "follow_up_due": False,
    "follow_up_reported": False,
}
_KEY = ("pseudonym", "hospital_id", "tumour_ref")


TumourKey = tuple[str, str, str]


def _facts(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))


def _rewrite_facts(change: Callable[[TumourKey, dict[str, Any]], object]) -> None:
    """Apply `change` to every tumour's facts document and store the results."""
    bind = op.get_bind()
    rows = []
    for pseudonym, hospital_id, tumour_ref, facts in bind.execute(
        sa.select(*(_tumours.c[name] for name in _KEY), _tumours.c.facts)
    ):
        document = json.loads(facts)
        change((pseudonym, hospital_id, tumour_ref), document)
        key = {"b_pseudonym": pseudonym, "b_hospital_id": hospital_id, "b_tumour_ref": tumour_ref}
        rows.append({**key, "b_facts": _facts(document)})
    if rows:
        statement = (
            sa.update(_tumours)
            .where(*(_tumours.c[name] == sa.bindparam(f"b_{name}") for name in _KEY))
            .values(facts=sa.bindparam("b_facts"))
        )
        bind.execute(statement, rows)


def upgrade() -> None:
    """Upgrade schema."""
    bind = op.get_bind()
    by_tumour: dict[TumourKey, list[list[Any]]] = defaultdict(list)
    for r in bind.execute(sa.select(_reminders)):
        by_tumour[(r.pseudonym, r.hospital_id, r.tumour_ref)].append(
            [
                r.kind,
                r.follow_up_year,
                r.status,
                r.diagnosis_date.isoformat(),
                r.due_date.isoformat(),
                r.transitions,
                r.changed_on.isoformat(),
            ]
        )

    def add_reminders(key: TumourKey, document: dict[str, Any]) -> None:
        document["reminders"] = by_tumour.pop(key, [])

    _rewrite_facts(add_reminders)
    if by_tumour:
        bind.execute(
            sa.insert(_tumours),
            [
                {
                    "pseudonym": pseudonym,
                    "hospital_id": hospital_id,
                    "tumour_ref": tumour_ref,
                    "facts": _facts({**_BARE, "reminders": reminders}),
                    "diagnosed": False,
                    "next_due_on": None,
                }
                for (pseudonym, hospital_id, tumour_ref), reminders in by_tumour.items()
            ],
        )
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reminders_pseudonym"))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reminders_pseudonym"), ["pseudonym"], unique=False)
    _rewrite_facts(lambda _, document: document.pop("reminders", None))
