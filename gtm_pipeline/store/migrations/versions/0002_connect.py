"""Connect: OAuth states, operator credentials, the `failed` status, tokens carry instance_url.

- `connectors.connector_id` stops being unique: it names the kind of connector ("salesforce"),
  which every tenant shares.
- `connectors.status` gains `failed` (the last connect attempt failed).
- `connector_tokens.instance_url`: a refresh can move a tenant to another instance, so the URL is
  stored with the tokens it belongs to; existing rows are backfilled from `connectors`.
- `oauth_states`: one row per started OAuth flow, consumed once.
- `operator_credentials`: hashed bearer tokens for the web app.

SQLite cannot alter constraints in place, so those changes go through Alembic's batch mode
(copy and swap), which runs the same ALTERs directly on PostgreSQL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "status IN ('connected', 'reconnect_needed', 'disconnected')"
NEW_STATUSES = "status IN ('connected', 'reconnect_needed', 'disconnected', 'failed')"
# 0001 ran its CHECK names through the naming convention twice, so databases hold this name.
OLD_CHECK_NAME = "ck_connectors_ck_connectors_status"
# What `gtm_pipeline.store.tables` renders for the status check today.
NEW_CHECK_NAME = "ck_connectors_status"


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _connectors(status_check: str, check_name: str, *, unique_connector_id: bool) -> sa.Table:
    """The `connectors` table as it stands before a batch change, so SQLite's copy-and-swap
    works from this exact definition rather than reflection (which renames CHECK constraints
    through the metadata's naming convention and would not find them again)."""
    constraints: list[sa.Constraint] = [
        sa.PrimaryKeyConstraint("tenant_id", name="pk_connectors"),
        sa.CheckConstraint(status_check, name=check_name),
    ]
    if unique_connector_id:
        constraints.append(sa.UniqueConstraint("connector_id", name="uq_connectors_connector_id"))
    return sa.Table(
        "connectors",
        sa.MetaData(),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("connector_id", sa.String(64), nullable=False),
        sa.Column("instance_url", sa.Text(), nullable=True),
        sa.Column("org_id", sa.String(18), nullable=True),
        sa.Column("status", sa.String(32), server_default="connected", nullable=False),
        sa.Column("status_detail", sa.Text(), nullable=True),
        sa.Column("connected_at", _timestamp(), nullable=True),
        sa.Column("updated_at", _timestamp(), nullable=False),
        *constraints,
    )


@contextmanager
def _tokens_survive_rebuilding_connectors() -> Iterator[None]:
    """Keep `connector_tokens` rows across SQLite's copy-and-swap of `connectors`.

    Batch mode drops the old `connectors` table; with foreign keys on, SQLite first deletes its
    rows and so cascades into `connector_tokens`. The pragma that would prevent that has no
    effect inside a transaction, and migrations run in one, so the rows are stashed in a
    temporary table and put back. PostgreSQL alters the table in place and needs none of this.
    """
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    op.execute("CREATE TEMPORARY TABLE _connector_tokens_0002 AS SELECT * FROM connector_tokens")
    yield
    op.execute("DELETE FROM connector_tokens")
    op.execute("INSERT INTO connector_tokens SELECT * FROM _connector_tokens_0002")
    op.execute("DROP TABLE _connector_tokens_0002")


def upgrade() -> None:
    before = _connectors(OLD_STATUSES, OLD_CHECK_NAME, unique_connector_id=True)
    with (
        _tokens_survive_rebuilding_connectors(),
        op.batch_alter_table("connectors", copy_from=before) as batch,
    ):
        batch.drop_constraint(op.f("uq_connectors_connector_id"), type_="unique")
        batch.drop_constraint(op.f(OLD_CHECK_NAME), type_="check")
        batch.create_check_constraint(op.f(NEW_CHECK_NAME), NEW_STATUSES)
    op.add_column("connector_tokens", sa.Column("instance_url", sa.Text(), nullable=True))
    op.execute(
        "UPDATE connector_tokens SET instance_url = (SELECT connectors.instance_url "
        "FROM connectors WHERE connectors.tenant_id = connector_tokens.tenant_id)"
    )
    op.create_table(
        "oauth_states",
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("connector_id", sa.String(64), nullable=False),
        sa.Column("code_verifier_ct", sa.Text(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("issued_at", _timestamp(), nullable=False),
        sa.Column("expires_at", _timestamp(), nullable=False),
        sa.Column("consumed_at", _timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("nonce", name="pk_oauth_states"),
    )
    op.create_index("ix_oauth_states_expires_at", "oauth_states", ["expires_at"])
    op.create_table(
        "operator_credentials",
        sa.Column("credential_id", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=True),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("revoked_at", _timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("credential_id", name="pk_operator_credentials"),
        sa.UniqueConstraint("token_hash", name="uq_operator_credentials_token_hash"),
    )


def _refuse_shared_connector_ids() -> None:
    """0001 could never hold tenants sharing a connector id; dropping some would lose data."""
    shared = (
        op.get_bind()
        .execute(
            sa.text("SELECT connector_id FROM connectors GROUP BY connector_id HAVING count(*) > 1")
        )
        .scalars()
        .all()
    )
    if shared:
        raise RuntimeError(
            "cannot downgrade below revision 0002: several tenants share the connector id "
            f"{', '.join(sorted(shared))}, which revision 0001 requires to be unique"
        )


def downgrade() -> None:
    _refuse_shared_connector_ids()
    op.drop_table("operator_credentials")
    op.drop_index("ix_oauth_states_expires_at", table_name="oauth_states")
    op.drop_table("oauth_states")
    with op.batch_alter_table("connector_tokens") as batch:
        batch.drop_column("instance_url")
    # 0001 has no `failed`; such a tenant is not connected, which 0001 spells `disconnected`.
    op.execute("UPDATE connectors SET status = 'disconnected' WHERE status = 'failed'")
    before = _connectors(NEW_STATUSES, NEW_CHECK_NAME, unique_connector_id=False)
    with (
        _tokens_survive_rebuilding_connectors(),
        op.batch_alter_table("connectors", copy_from=before) as batch,
    ):
        batch.drop_constraint(op.f(NEW_CHECK_NAME), type_="check")
        batch.create_check_constraint(op.f(OLD_CHECK_NAME), OLD_STATUSES)
        batch.create_unique_constraint(op.f("uq_connectors_connector_id"), ["connector_id"])
