"""`sync_slices`: the plan and progress of a full read split into SystemModstamp ranges.

A full sync of a large object reads its slices in parallel (`sync/slices.py`), through REST
pages or one Bulk job each (`extraction`). Each slice's
position is committed with the rows it covers, so an interrupted run resumes every unfinished
slice where it stopped and reads no finished one again. The rows go when the entity's cursor
moves past every slice.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_slices",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("slice", sa.Integer(), nullable=False),
        sa.Column("lower_modstamp", sa.DateTime(timezone=True), nullable=True),
        sa.Column("upper_modstamp", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cursor_modstamp", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cursor_id", sa.String(64), nullable=True),
        sa.Column("done", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("extraction", sa.String(8), server_default="rest", nullable=False),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "entity", "slice", name="pk_sync_slices"),
        sa.CheckConstraint("extraction IN ('rest', 'bulk')", name="ck_sync_slices_extraction"),
    )


def downgrade() -> None:
    # An unfinished sliced read is forgotten: its entity has no cursor yet, so the next sync
    # is a full one again.
    op.drop_table("sync_slices")
