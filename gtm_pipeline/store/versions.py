"""Which version of each record the store holds: what reconciliation compares with Salesforce.

Read as whole columns (one statement per table, no per-row type processing: SQLite's stamps come
back as their stored text and are parsed in one pass), so comparing a 1,000,000-record entity
costs seconds, not minutes. Runs in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from gtm_pipeline.store.duplicates import twins_kept_marked
from gtm_pipeline.store.id_filters import among
from gtm_pipeline.store.quarantine import forget_failures
from gtm_pipeline.store.tables import CANONICAL_TABLES, quality_failures
from gtm_pipeline.store.types import ensure_aware_utc


def _instants(values: Sequence[object]) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")


def _raw(column: sa.Column) -> sa.ColumnElement:
    """The column as the driver returns it, skipping `UTCDateTime`'s per-value processing."""
    return sa.type_coerce(column, sa.String)


def stored_versions(conn: sa.Connection, tenant_id: str, entity: str) -> pd.DataFrame:
    """external_id, system_modstamp (UTC), is_deleted of every row of the entity's table."""
    table = CANONICAL_TABLES[entity]
    rows = conn.execute(
        sa.select(table.c.external_id, _raw(table.c.system_modstamp), table.c.is_deleted).where(
            table.c.tenant_id == tenant_id
        )
    ).all()
    ids, stamps, deleted = zip(*rows, strict=True) if rows else ((), (), ())
    return pd.DataFrame(
        {
            "external_id": pd.Series(ids, dtype=object),
            "system_modstamp": _instants(stamps),
            "is_deleted": pd.Series(deleted, dtype=bool),
        }
    )


def quarantined_versions(conn: sa.Connection, tenant_id: str, entity: str) -> pd.DataFrame:
    """external_id and the quarantined version's system_modstamp (NaT when unreadable), once
    per record whatever the number of gates it failed."""
    table = quality_failures
    rows = conn.execute(
        sa.select(table.c.external_id, sa.func.max(_raw(table.c.system_modstamp)))
        .where(table.c.tenant_id == tenant_id, table.c.entity == entity)
        .group_by(table.c.external_id)
    ).all()
    ids, stamps = zip(*rows, strict=True) if rows else ((), ())
    return pd.DataFrame(
        {"external_id": pd.Series(ids, dtype=object), "system_modstamp": _instants(stamps)}
    )


def mark_purged(
    conn: sa.Connection, tenant_id: str, entity: str, external_ids: Sequence[str], now: datetime
) -> int:
    """Flag rows deleted whose records Salesforce no longer has at all (not even in the recycle
    bin): `deleted_reason` "purged", `deleted_at` = `now` (the purge's moment is not known).
    Their quarantine entries go, and their email twins are handed over. Returns rows flagged."""
    if not external_ids:
        return 0
    now = ensure_aware_utc(now, "now")
    table = CANONICAL_TABLES[entity]
    with twins_kept_marked(conn, table, tenant_id, external_ids):
        flagged = conn.execute(
            sa.update(table)
            .where(table.c.tenant_id == tenant_id, among(conn, table.c.external_id, external_ids))
            .values(is_deleted=True, deleted_at=now, deleted_reason="purged")
        ).rowcount
    forget_failures(conn, tenant_id, entity, external_ids)
    return flagged
