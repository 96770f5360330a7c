"""Safety against real orgs and hostile hands: what the OAuth binding, logout and writeback keep.

- `oauth_states.binding_hash`: SHA-256 (hex) of the random nonce set as a cookie in the browser
  that started the flow; the callback needs the matching cookie, so a forwarded authorize link
  cannot connect someone else's org. `oauth_states.started_by`: the operator credential whose
  session started it, required again at the callback.
- `operator_credentials.sessions_valid_after`: sessions signed before this time are refused, so
  logging out ends a session on the server, not only in the browser.
- `field_mappings.allow_standard_field`: a writeback mapping to a standard Salesforce field was
  set with `--allow-standard-field` on purpose; recorded with the mapping.
- `writeback_state.last_error_fields`: the `errors[].fields` of a refused record, as Salesforce
  sent them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
    op.add_column("oauth_states", sa.Column("binding_hash", sa.String(64), nullable=True))
    op.add_column("oauth_states", sa.Column("started_by", sa.String(64), nullable=True))
    op.add_column(
        "operator_credentials",
        sa.Column("sessions_valid_after", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "field_mappings",
        sa.Column("allow_standard_field", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("writeback_state", sa.Column("last_error_fields", json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("writeback_state") as batch:
        batch.drop_column("last_error_fields")
    with op.batch_alter_table("field_mappings") as batch:
        batch.drop_column("allow_standard_field")
    with op.batch_alter_table("operator_credentials") as batch:
        batch.drop_column("sessions_valid_after")
    with op.batch_alter_table("oauth_states") as batch:
        batch.drop_column("started_by")
        batch.drop_column("binding_hash")
