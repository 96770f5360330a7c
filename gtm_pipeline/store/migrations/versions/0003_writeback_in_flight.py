"""Writeback: the values of the batch in flight, so a rerun after a crash can settle it.

`writeback_state.sending_values` holds what a batch is about to send, written in its own
transaction before the request and cleared with the batch's outcomes. A value still there when a
run starts means the process died between the request and its outcomes: the engine reads the
record back from Salesforce and settles it instead of sending it a second time.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
    op.add_column("writeback_state", sa.Column("sending_values", json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("writeback_state") as batch:
        batch.drop_column("sending_values")
