"""The store as a function of Salesforce's state: duplicates marked, deletions with a reason.

- `persons.duplicate_of`: email twins are no longer quarantined. Every twin is stored with its
  newest values; all but the survivor (the smallest external id of the tenant's live rows sharing
  the normalised email) point at it and leave the live set. Filled here for the rows already
  stored; `ix_persons_tenant_id_email` lets each load find the rows of the emails it touches.
- `deleted_reason` on the three canonical tables: `deleted` (seen in the recycle bin) or `purged`
  (gone even from queryAll, found by reconciliation). Filled with `deleted` for deleted rows.
- `quality_failures.system_modstamp`: the stamp of the quarantined version, so reconciliation can
  tell a quarantine entry that Salesforce has since changed.
- The quarantine entries of the former email-duplicate rule are dropped: those records are now
  stored rows, read again by the next full sync or reconciliation (`gtm-pipeline reconcile`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CANONICAL = ("accounts", "persons", "opportunities")


def _canonical(name: str) -> sa.TableClause:
    return sa.table(name, sa.column("is_deleted"), sa.column("deleted_reason"))


def _mark_twins() -> None:
    """duplicate_of = the smallest id (byte order) among the live rows sharing the row's email."""
    persons = sa.table(
        "persons", *(sa.column(c) for c in
                     ("tenant_id", "external_id", "email", "is_deleted", "duplicate_of"))
    )  # fmt: skip
    twin = persons.alias("twin")
    twin_id = twin.c.external_id
    if op.get_bind().dialect.name == "postgresql":
        twin_id = twin_id.collate("C")
    survivor = (
        sa.select(sa.func.min(twin_id))
        .where(
            twin.c.tenant_id == persons.c.tenant_id,
            twin.c.email == persons.c.email,
            twin.c.is_deleted == sa.false(),
        )
        .scalar_subquery()
    )
    op.execute(
        sa.update(persons)
        .where(persons.c.is_deleted == sa.false(), persons.c.email.is_not(None))
        .values(duplicate_of=sa.func.nullif(survivor, persons.c.external_id))
    )


def upgrade() -> None:
    for name in CANONICAL:
        op.add_column(name, sa.Column("deleted_reason", sa.String(16), nullable=True))
        table = _canonical(name)
        op.execute(
            sa.update(table).where(table.c.is_deleted == sa.true()).values(deleted_reason="deleted")
        )
    op.add_column("persons", sa.Column("duplicate_of", sa.String(64), nullable=True))
    op.create_index("ix_persons_tenant_id_email", "persons", ["tenant_id", "email"])
    _mark_twins()
    stamp = sa.Column("system_modstamp", sa.DateTime(timezone=True), nullable=True)
    op.add_column("quality_failures", stamp)
    failures = sa.table("quality_failures", sa.column("stage"), sa.column("entity"))
    op.execute(
        sa.delete(failures).where(
            failures.c.stage == "deduplication", failures.c.entity == "persons"
        )
    )


def downgrade() -> None:
    op.drop_index("ix_persons_tenant_id_email", table_name="persons")
    with op.batch_alter_table("persons") as batch:
        batch.drop_column("duplicate_of")
    for table in CANONICAL:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("deleted_reason")
    with op.batch_alter_table("quality_failures") as batch:
        batch.drop_column("system_modstamp")
