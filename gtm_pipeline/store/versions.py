"""Which version of each record the store holds: what reconciliation compares with Salesforce.

Read as whole columns (one statement per table; the driver's tuples are taken apart column by
column with no per-row type processing: SQLite's stamps come back as their stored text and are
parsed in one pass), so comparing a 1,000,000-record entity costs about a second. Runs in the
caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from gtm_pipeline.store.duplicates import twins_kept_marked
from gtm_pipeline.store.id_filters import among
from gtm_pipeline.store.quarantine import forget_failures
from gtm_pipeline.store.tables import entity_rows, quality_failures
from gtm_pipeline.store.types import ensure_aware_utc

_PARTITION_ROWS = 20_000


def _texts(values: Sequence[str]) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(pa.array(values, pa.string())))


def _instants(values: Sequence[object]) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")


def _raw(column: sa.Column) -> sa.ColumnElement:
    """The column as the driver returns it, skipping `UTCDateTime`'s per-value processing."""
    return sa.type_coerce(column, sa.String)


def _driver_rows(result: sa.CursorResult) -> Iterator[Sequence[tuple]]:
    """The result's rows as the driver's tuples, 20,000 at a time: no `Row` object per row (a
    second a million), and a million rows as Python tuples would cost several hundred MB."""
    with result:
        while rows := result.cursor.fetchmany(_PARTITION_ROWS):
            yield rows


def _part(rows: Sequence[tuple], names: Sequence[str]) -> pd.DataFrame:
    """Compact columns: the id as Arrow text, the stamp as UTC instants, flags as booleans."""
    part = {
        "external_id": _texts([r[0] for r in rows]),
        "system_modstamp": _instants([r[1] for r in rows]),
    }
    for position, name in enumerate(names[2:], start=2):
        part[name] = pd.Series(np.array([r[position] for r in rows], dtype=bool))
    return pd.DataFrame(part)


def _frame(result: sa.CursorResult, names: Sequence[str]) -> pd.DataFrame:
    parts = [_part(rows, names) for rows in _driver_rows(result)]
    return pd.concat(parts or [_part([], names)], ignore_index=True)


def stored_versions(conn: sa.Connection, tenant_id: str, entity: str) -> pd.DataFrame:
    """external_id, system_modstamp (UTC), is_deleted (and is_archived, where the table has it:
    missing reads as False) of every row of the entity."""
    rows = entity_rows(entity)
    table = rows.table
    flags = [c for c in ("is_deleted", "is_archived") if c in table.c]
    query = sa.select(
        table.c.external_id, _raw(table.c.system_modstamp), *(table.c[c] for c in flags)
    )
    # Ordered by the primary key: SQLite then reads it (tenant_id, external_id) instead of
    # looking every row up from the (tenant_id, email) index, five times slower.
    result = conn.execute(query.where(rows.of_tenant(tenant_id)).order_by(table.c.external_id))
    return _frame(result, ("external_id", "system_modstamp", *flags))


def stored_count(conn: sa.Connection, tenant_id: str, entity: str) -> int:
    """How many records of the entity the store holds: rows plus quarantined records (a record
    with both counts twice; this sizes the work, it does not count records exactly)."""
    rows = sa.select(sa.func.count()).where(entity_rows(entity).of_tenant(tenant_id))
    failures = quality_failures
    quarantined = sa.select(sa.func.count(sa.distinct(failures.c.external_id))).where(
        failures.c.tenant_id == tenant_id, failures.c.entity == entity
    )
    return conn.execute(rows).scalar_one() + conn.execute(quarantined).scalar_one()


def quarantined_versions(
    conn: sa.Connection, tenant_id: str, entity: str, raw_fields: Sequence[str] = ()
) -> pd.DataFrame:
    """external_id and the quarantined version's system_modstamp (NaT when unreadable), once
    per record whatever the number of gates it failed; with each of `raw_fields` as the
    quarantined raw values hold it (None where no entry has it)."""
    table = quality_failures
    mine = (table.c.tenant_id == tenant_id, table.c.entity == entity)
    result = conn.execute(
        sa.select(table.c.external_id, sa.func.max(_raw(table.c.system_modstamp)))
        .where(*mine)
        .group_by(table.c.external_id)
    )
    frame = _frame(result, ("external_id", "system_modstamp"))
    if raw_fields:
        held = _raw_values(conn, sa.select(table.c.external_id, table.c.raw).where(*mine))
        ids = frame["external_id"].tolist()
        for name in raw_fields:
            frame[name] = pd.Series([held.get(i, {}).get(name) for i in ids], dtype=object)
    return frame


def _raw_values(conn: sa.Connection, query: sa.Select) -> dict[str, dict]:
    """Per record, the raw values its quarantine entries hold (the first entry's, per field)."""
    held: dict[str, dict] = {}
    for external_id, raw in conn.execute(query):
        values = held.setdefault(external_id, {})
        for name, value in (raw or {}).items():
            if value is not None:
                values.setdefault(name, value)
    return held


def mark_purged(
    conn: sa.Connection, tenant_id: str, entity: str, external_ids: Sequence[str], now: datetime
) -> int:
    """Flag rows deleted whose records Salesforce no longer has at all (not even in the recycle
    bin): `deleted_reason` "purged", `deleted_at` = `now` (the purge's moment is not known).
    Their quarantine entries go, and their email twins are handed over. Returns rows flagged."""
    if not external_ids:
        return 0
    now = ensure_aware_utc(now, "now")
    table = entity_rows(entity).table
    with twins_kept_marked(conn, table, tenant_id, external_ids):
        flagged = conn.execute(
            sa.update(table)
            .where(table.c.tenant_id == tenant_id, among(conn, table.c.external_id, external_ids))
            .values(is_deleted=True, deleted_at=now, deleted_reason="purged")
        ).rowcount
    forget_failures(conn, tenant_id, entity, external_ids)
    return flagged
