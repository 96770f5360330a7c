"""The initial store schema: connectors, tokens, mappings, sync state, entities, quality, scores.

Written by hand to match `gtm_pipeline.store.tables`; a test compares the migrated database with
that metadata on SQLite and PostgreSQL. Types are spelled out here rather than imported from the
application so this revision keeps meaning the same thing when the application code moves on.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _canonical_columns(entity_columns: list[sa.Column]) -> list[sa.Column]:
    return [
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        *entity_columns,
        sa.Column("system_modstamp", _timestamp(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("deleted_at", _timestamp(), nullable=True),
        sa.Column("custom_fields", _json(), nullable=True),
        sa.Column("synced_at", _timestamp(), nullable=False),
    ]


def _create_canonical(name: str, entity_columns: list[sa.Column]) -> None:
    op.create_table(
        name,
        *_canonical_columns(entity_columns),
        sa.PrimaryKeyConstraint("tenant_id", "external_id", name=f"pk_{name}"),
    )
    op.create_index(f"ix_{name}_tenant_id_system_modstamp", name, ["tenant_id", "system_modstamp"])


def upgrade() -> None:
    op.create_table(
        "connectors",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("connector_id", sa.String(64), nullable=False),
        sa.Column("instance_url", sa.Text(), nullable=True),
        sa.Column("org_id", sa.String(18), nullable=True),
        sa.Column("status", sa.String(32), server_default="connected", nullable=False),
        sa.Column("status_detail", sa.Text(), nullable=True),
        sa.Column("connected_at", _timestamp(), nullable=True),
        sa.Column("updated_at", _timestamp(), nullable=False),
        sa.CheckConstraint(
            "status IN ('connected', 'reconnect_needed', 'disconnected')",
            name="ck_connectors_status",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_connectors"),
        sa.UniqueConstraint("connector_id", name="uq_connectors_connector_id"),
    )
    op.create_table(
        "connector_tokens",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("connector_id", sa.String(64), nullable=False),
        sa.Column("access_token_ct", sa.Text(), nullable=False),
        sa.Column("refresh_token_ct", sa.Text(), nullable=True),
        sa.Column("issued_at", _timestamp(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["connectors.tenant_id"],
            name="fk_connector_tokens_tenant_id_connectors",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "connector_id", name="pk_connector_tokens"),
    )
    op.create_table(
        "field_mappings",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("target_field", sa.String(255), nullable=False),
        sa.Column("source_path", sa.String(255), nullable=False),
        sa.Column("transform", sa.String(64), nullable=True),
        sa.Column("required", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("sf_object", sa.String(64), nullable=True),
        sa.CheckConstraint(
            "direction IN ('sync', 'writeback')", name="ck_field_mappings_direction"
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "entity", "direction", "target_field", name="pk_field_mappings"
        ),
    )
    op.create_table(
        "sync_state",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("cursor_modstamp", _timestamp(), nullable=True),
        sa.Column("cursor_id", sa.String(64), nullable=True),
        sa.Column("mode", sa.String(16), nullable=True),
        sa.Column("last_started_at", _timestamp(), nullable=True),
        sa.Column("last_succeeded_at", _timestamp(), nullable=True),
        sa.Column("last_stats", _json(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "entity", name="pk_sync_state"),
    )
    _create_canonical(
        "accounts",
        [
            sa.Column("name", sa.Text(), nullable=True),
            sa.Column("domain", sa.Text(), nullable=True),
            sa.Column("website", sa.Text(), nullable=True),
            sa.Column("industry", sa.Text(), nullable=True),
            sa.Column("employee_count", sa.Integer(), nullable=True),
            sa.Column("annual_revenue", sa.Float(), nullable=True),
        ],
    )
    _create_canonical(
        "persons",
        [
            sa.Column("email", sa.Text(), nullable=True),
            sa.Column("first_name", sa.Text(), nullable=True),
            sa.Column("last_name", sa.Text(), nullable=True),
            sa.Column("title", sa.Text(), nullable=True),
            sa.Column("phone", sa.Text(), nullable=True),
            sa.Column("account_external_id", sa.String(64), nullable=True),
        ],
    )
    op.create_index(
        "ix_persons_tenant_id_account_external_id", "persons", ["tenant_id", "account_external_id"]
    )
    _create_canonical(
        "opportunities",
        [
            sa.Column("name", sa.Text(), nullable=True),
            sa.Column("stage", sa.Text(), nullable=True),
            sa.Column("close_date", sa.Date(), nullable=True),
            sa.Column("amount", sa.Float(), nullable=True),
            sa.Column("account_external_id", sa.String(64), nullable=True),
        ],
    )
    op.create_index(
        "ix_opportunities_tenant_id_account_external_id",
        "opportunities",
        ["tenant_id", "account_external_id"],
    )
    op.create_table(
        "quality_failures",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(64), nullable=False),
        sa.Column("field", sa.String(255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", _json(), nullable=True),
        sa.Column("first_seen_at", _timestamp(), nullable=False),
        sa.Column("last_seen_at", _timestamp(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint(
            "tenant_id", "entity", "external_id", "stage", name="pk_quality_failures"
        ),
    )
    op.create_index(
        "ix_quality_failures_tenant_id_entity_last_seen_at",
        "quality_failures",
        ["tenant_id", "entity", "last_seen_at"],
    )
    op.create_table(
        "scores",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("fit_score", sa.Float(), nullable=True),
        sa.Column("engagement_score", sa.Float(), nullable=True),
        sa.Column("combined_score", sa.Float(), nullable=True),
        sa.Column("tier", sa.String(16), nullable=True),
        sa.Column("scored_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "entity_type", "external_id", name="pk_scores"),
    )
    op.create_table(
        "writeback_state",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("last_written_values", _json(), nullable=True),
        sa.Column("last_status", sa.String(16), nullable=True),
        sa.Column("last_error_code", sa.String(64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_attempt_at", _timestamp(), nullable=True),
        sa.Column("written_at", _timestamp(), nullable=True),
        sa.PrimaryKeyConstraint(
            "tenant_id", "entity_type", "external_id", name="pk_writeback_state"
        ),
    )
    op.create_index(
        "ix_writeback_state_tenant_id_last_status",
        "writeback_state",
        ["tenant_id", "last_status"],
    )


def downgrade() -> None:
    op.drop_index("ix_writeback_state_tenant_id_last_status", table_name="writeback_state")
    op.drop_table("writeback_state")
    op.drop_table("scores")
    op.drop_index(
        "ix_quality_failures_tenant_id_entity_last_seen_at", table_name="quality_failures"
    )
    op.drop_table("quality_failures")
    for name in ("opportunities", "persons", "accounts"):
        if name != "accounts":
            op.drop_index(f"ix_{name}_tenant_id_account_external_id", table_name=name)
        op.drop_index(f"ix_{name}_tenant_id_system_modstamp", table_name=name)
        op.drop_table(name)
    op.drop_table("sync_state")
    op.drop_table("field_mappings")
    op.drop_table("connector_tokens")
    op.drop_table("connectors")
