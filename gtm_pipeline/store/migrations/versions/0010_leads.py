"""Leads join Contacts in `persons`: `source_object` says which object a row came from.

Every existing row is a Contact (`source_object` defaults to `Contact`). The Lead columns,
empty on Contacts, are `company`, `lead_status`, `lead_source`, `is_converted` and the Contact
and Account a converted Lead became (`converted_contact_external_id`,
`converted_account_external_id`). A converted Lead stays stored with its history but leaves the
live set (`tables.is_live`). Email twins now span both objects, a Contact surviving over a Lead
(`store/duplicates.py`); a store upgraded from 0009 holds Contacts only, whose marks stay right.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEAD_COLUMNS = (
    "company",
    "lead_status",
    "lead_source",
    "is_converted",
    "converted_contact_external_id",
    "converted_account_external_id",
)


def upgrade() -> None:
    with op.batch_alter_table("persons") as batch:
        batch.add_column(
            sa.Column("source_object", sa.String(16), server_default="Contact", nullable=False)
        )
        batch.add_column(sa.Column("company", sa.Text(), nullable=True))
        batch.add_column(sa.Column("lead_status", sa.Text(), nullable=True))
        batch.add_column(sa.Column("lead_source", sa.Text(), nullable=True))
        batch.add_column(sa.Column("is_converted", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("converted_contact_external_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("converted_account_external_id", sa.String(64), nullable=True))
        batch.create_check_constraint(
            "ck_persons_source_object", "source_object IN ('Contact', 'Lead')"
        )


def downgrade() -> None:
    # Leads have no place in the older schema: their rows go with the columns.
    op.execute(sa.text("DELETE FROM persons WHERE source_object = 'Lead'"))
    with op.batch_alter_table("persons") as batch:
        batch.drop_constraint("ck_persons_source_object", type_="check")
        for name in (*_LEAD_COLUMNS, "source_object"):
            batch.drop_column(name)
