"""Drop the indexes no query reads: every write to their tables paid for them.

- `ix_persons_tenant_id_account_external_id` and `ix_opportunities_tenant_id_account_external_id`
  took an insert at a random place for every record synced (Account Ids come in no order). On
  the emulator, without them the full sync of 1,000,000 Contacts into SQLite took 25.2 s instead
  of 31.0 through REST and 16.6 s instead of 21.7 through Bulk (median of 2), and the
  205,255-record sync by the default path 4.11 s instead of 4.38 on SQLite and 4.13 s instead of
  4.49 on PostgreSQL (median of 3; alternated runs, 2026-11-28).
- `ix_quality_failures_tenant_id_entity_last_seen_at` and `ix_writeback_state_tenant_id_last_status`
  were updated with every quarantined record and every writeback outcome (on PostgreSQL, an
  indexed column changing also keeps the update from being done in place).

Who reads these tables: scoring reads a tenant's whole tables (joins in pandas); the quarantine,
the quality report and its asset checks read `quality_failures` by tenant and entity (the primary
key's first columns), sorted by `first_seen_at`; the writeback reads `writeback_state` by tenant
and entity type. None of them filters or sorts on the dropped columns. A team that looks up one
Account's Contacts in the store can create the index its queries need.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (index, table, columns), as 0001 created them.
DROPPED = (
    ("ix_persons_tenant_id_account_external_id", "persons", ["tenant_id", "account_external_id"]),
    (
        "ix_opportunities_tenant_id_account_external_id",
        "opportunities",
        ["tenant_id", "account_external_id"],
    ),
    (
        "ix_quality_failures_tenant_id_entity_last_seen_at",
        "quality_failures",
        ["tenant_id", "entity", "last_seen_at"],
    ),
    ("ix_writeback_state_tenant_id_last_status", "writeback_state", ["tenant_id", "last_status"]),
)


def upgrade() -> None:
    for name, table, _ in DROPPED:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for name, table, columns in DROPPED:
        op.create_index(name, table, columns)
