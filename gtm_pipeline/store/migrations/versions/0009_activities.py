"""The `activities` table: Salesforce Tasks and Events of a tenant, one row per record.

Both objects share the table (`kind` says which: `task` or `event`), since what reads them (the
engagement score) asks one question of both: who or what was engaged, how, and when. Ids are
unique across an org's objects, so the key stays (tenant_id, external_id). `occurred_at` is the
moment the activity happened as the sync derives it (Tasks: completion, due date, creation;
Events: start); `who_object`/`what_object` name the object a polymorphic `WhoId`/`WhatId` points
at, read from the Id's key prefix.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "activities",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("subtype", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("occurred_at", _timestamp(), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("who_external_id", sa.String(64), nullable=True),
        sa.Column("who_object", sa.String(32), nullable=True),
        sa.Column("what_external_id", sa.String(64), nullable=True),
        sa.Column("what_object", sa.String(32), nullable=True),
        sa.Column("account_external_id", sa.String(64), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=True),
        sa.Column("is_archived", sa.Boolean(), nullable=True),
        sa.Column("system_modstamp", _timestamp(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("deleted_at", _timestamp(), nullable=True),
        sa.Column("deleted_reason", sa.String(16), nullable=True),
        sa.Column(
            "custom_fields",
            sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql"),
            nullable=True,
        ),
        sa.Column("synced_at", _timestamp(), nullable=False),
        sa.CheckConstraint("kind IN ('task', 'event')", name="ck_activities_kind"),
        sa.PrimaryKeyConstraint("tenant_id", "external_id", name="pk_activities"),
    )
    op.create_index(
        "ix_activities_tenant_id_system_modstamp", "activities", ["tenant_id", "system_modstamp"]
    )


def downgrade() -> None:
    op.drop_index("ix_activities_tenant_id_system_modstamp", table_name="activities")
    op.drop_table("activities")
