"""The email index leads with the tenant again: `ix_persons_tenant_id_email` (a B-tree) replaces
0007's `ix_persons_email` (the email alone; a hash index on PostgreSQL).

Every twin lookup filters on the tenant and a set of emails. With an index on the email alone,
SQLite (and PostgreSQL before its statistics exist) chose the tenant's modstamp index instead and
read every person of the tenant on every page: an incremental sync of 1,000 changed Contacts on a
1,000,000-Contact org took 4.4 s instead of 1.1 s. An index on (tenant, email) answers the whole
filter, whatever the planner knows.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_persons_email", table_name="persons")
    op.create_index("ix_persons_tenant_id_email", "persons", ["tenant_id", "email"])


def downgrade() -> None:
    op.drop_index("ix_persons_tenant_id_email", table_name="persons")
    op.create_index("ix_persons_email", "persons", ["email"], postgresql_using="hash")
