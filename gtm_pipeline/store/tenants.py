"""Whole-tenant operations on the store."""

from __future__ import annotations

import sqlalchemy as sa

from gtm_pipeline.store.tables import (
    CANONICAL_TABLES,
    quality_failures,
    scores,
    sync_slices,
    sync_state,
    writeback_state,
)


def delete_synced_data(conn: sa.Connection, tenant_id: str) -> int:
    """Remove a tenant's synced rows, cursors, quarantine and scores; its connection stays.

    The next sync is then a full one. Returns the number of rows removed.
    """
    removed = 0
    for table in (
        *CANONICAL_TABLES.values(),
        quality_failures,
        sync_state,
        sync_slices,
        scores,
        writeback_state,
    ):
        removed += conn.execute(sa.delete(table).where(table.c.tenant_id == tenant_id)).rowcount
    return removed
