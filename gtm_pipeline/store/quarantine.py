"""`quality_failures`: records a quality gate rejected, kept with their reason and raw values.

A record is quarantined per (tenant, entity, external id, stage). Each page of a sync replaces the
quarantine entries of the records it carried: a record that passes now leaves the quarantine, one
that fails again keeps its `first_seen_at`. Runs in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gtm_pipeline.store.id_filters import among, rows_by_id
from gtm_pipeline.store.tables import entity_rows, is_live, quality_failures
from gtm_pipeline.store.types import ensure_aware_utc
from gtm_pipeline.store.upsert import upsert_records


def replace_failures(
    conn: sa.Connection,
    tenant_id: str,
    entity: str,
    seen_ids: Sequence[str],
    failures: Sequence[Mapping[str, Any]],
    *,
    run_id: str | None,
    now: datetime,
) -> None:
    """Make `failures` the quarantine entries of the records in `seen_ids`.

    Each failure needs `external_id`, `stage`, `field`, `reason` and `raw` (JSON-able), and may
    carry the quarantined version's `system_modstamp`. A record
    served twice on one page and rejected twice is kept once (the last failure), and a failure's
    own id is replaced even when it is not in `seen_ids` (the placeholder key of a record that
    has no id): either would otherwise hit the primary key and fail the page on every run.
    """
    now = ensure_aware_utc(now, "now")
    table = quality_failures
    scope = (table.c.tenant_id == tenant_id, table.c.entity == entity)
    failures = list({(f["external_id"], f["stage"]): f for f in failures}.values())
    ids = list(dict.fromkeys([*seen_ids, *(f["external_id"] for f in failures)]))
    removed = conn.execute(
        sa.delete(table)
        .where(*scope, among(conn, table.c.external_id, ids))
        .returning(table.c.external_id, table.c.stage, table.c.first_seen_at)
    )
    first_seen = {(r.external_id, r.stage): r.first_seen_at for r in removed}
    if not failures:
        return
    # The bulk upsert's path (COPY on PostgreSQL): an INSERT executemany sent one statement per
    # failure, ~60 ms for 500 failures. No entry of these ids is left, so none conflicts.
    upsert_records(
        conn,
        table,
        [
            {
                "tenant_id": tenant_id,
                "entity": entity,
                "external_id": f["external_id"],
                "stage": f["stage"],
                "field": f.get("field"),
                "reason": f["reason"],
                "raw": f.get("raw"),
                "system_modstamp": f.get("system_modstamp"),
                "first_seen_at": first_seen.get((f["external_id"], f["stage"]), now),
                "last_seen_at": now,
                "run_id": run_id,
            }
            for f in failures
        ],
    )


def drop_quarantined_rows(
    conn: sa.Connection, table: sa.Table, tenant_id: str, failures: Sequence[Mapping[str, Any]]
) -> int:
    """Remove the stored rows of quarantined records from `table`: a record that fails a gate has
    no row, so no earlier version of it is presented as current. A row newer than the version
    quarantined stays (that version was read late); a version whose stamp could not be read
    removes the row. Returns the rows removed.

    Two statements whatever the count: the stored stamps of the quarantined ids, then one delete
    of the rows to go (a statement per id cost PostgreSQL a round trip each, ~0.35 s over a
    200,000-Contact sync, where almost none of them have a row)."""
    newest = {f["external_id"]: f.get("system_modstamp") for f in failures}
    if not newest:
        return 0
    key = table.c.tenant_id == tenant_id
    # Locked: on PostgreSQL a concurrent load cannot make a row newer between this read and the
    # delete (SQLite's write lock, taken at BEGIN, already excludes it).
    columns = (table.c.external_id, table.c.system_modstamp)
    stored = conn.execute(rows_by_id(conn, table, tenant_id, list(newest), *columns, lock=True))
    doomed = [
        row.external_id
        for row in stored
        if newest[row.external_id] is None
        or row.system_modstamp <= ensure_aware_utc(newest[row.external_id], "system_modstamp")
    ]
    if not doomed:
        return 0
    return conn.execute(
        sa.delete(table).where(key, among(conn, table.c.external_id, doomed))
    ).rowcount


def forget_failures(
    conn: sa.Connection, tenant_id: str, entity: str, external_ids: Sequence[str]
) -> int:
    """Drop the quarantine entries of records deleted in Salesforce: nothing is left to fix,
    and they would keep counting against the tenant's quality. Returns the rows removed."""
    table = quality_failures
    return conn.execute(
        sa.delete(table).where(
            table.c.tenant_id == tenant_id,
            table.c.entity == entity,
            among(conn, table.c.external_id, list(dict.fromkeys(external_ids))),
        )
    ).rowcount


def failures_for(
    conn: sa.Connection,
    tenant_id: str,
    entity: str,
    *,
    stage: str | None = None,
    run_id: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Quarantined records of one entity, oldest first, optionally of one stage or one run.

    Filters and limit run in SQL, so a report on a large quarantine reads only what it shows.
    """
    table = quality_failures
    query = sa.select(table).where(table.c.tenant_id == tenant_id, table.c.entity == entity)
    if stage is not None:
        query = query.where(table.c.stage == stage)
    if run_id is not None:
        query = query.where(table.c.run_id == run_id)
    query = query.order_by(table.c.first_seen_at, table.c.external_id, table.c.stage)
    if limit is not None:
        query = query.limit(limit)
    return [dict(row._mapping) for row in conn.execute(query)]


def quarantine_counts(conn: sa.Connection, tenant_id: str, entity: str) -> dict[str, int]:
    """Records of one entity in quarantine, per quality stage (stages with none left out)."""
    table = quality_failures
    rows = conn.execute(
        sa.select(table.c.stage, sa.func.count())
        .where(table.c.tenant_id == tenant_id, table.c.entity == entity)
        .group_by(table.c.stage)
        .order_by(table.c.stage)
    )
    return {stage: int(count) for stage, count in rows}


def live_row_count(conn: sa.Connection, tenant_id: str, entity: str) -> int:
    """Rows of the entity's canonical table in the live set (`tables.is_live`)."""
    rows = entity_rows(entity)
    query = sa.select(sa.func.count()).where(rows.of_tenant(tenant_id), is_live(rows.table))
    return int(conn.execute(query).scalar_one())


def quarantined_record_count(conn: sa.Connection, tenant_id: str, entity: str) -> int:
    """Records of the entity in the tenant's quarantine, each once whatever the gates it failed."""
    query = sa.select(sa.func.count(sa.distinct(quality_failures.c.external_id))).where(
        quality_failures.c.tenant_id == tenant_id, quality_failures.c.entity == entity
    )
    return int(conn.execute(query).scalar_one())


def entity_record_count(conn: sa.Connection, tenant_id: str, entity: str) -> int:
    """Rows not deleted (live ones and email twins) plus quarantined records: every record the
    tenant's org holds that the store knows of, the denominator of the tenant-wide rates."""
    rows = entity_rows(entity)
    table = rows.table
    present = rows.of_tenant(tenant_id), table.c.is_deleted.is_(False)
    quarantined_only = sa.select(sa.func.count(sa.distinct(quality_failures.c.external_id))).where(
        quality_failures.c.tenant_id == tenant_id,
        quality_failures.c.entity == entity,
        quality_failures.c.external_id.not_in(sa.select(table.c.external_id).where(*present)),
    )
    stored = conn.execute(sa.select(sa.func.count()).where(*present)).scalar_one()
    return int(stored) + int(conn.execute(quarantined_only).scalar_one())


TWINS_STAGE = "deduplication"
"""The quality stage email twins are counted under (they are marked in the store, not here)."""


def standing_counts(conn: sa.Connection, tenant_id: str, entity: str) -> tuple[dict[str, int], int]:
    """The tenant's records of one entity held back per stage (quarantined ones, and email twins
    under `TWINS_STAGE`) and all its records known: what its gates' severity is judged on."""
    counts = quarantine_counts(conn, tenant_id, entity)
    twins, _ = twins_of(conn, tenant_id, entity, limit=0)
    if twins:
        counts[TWINS_STAGE] = counts.get(TWINS_STAGE, 0) + twins
    return counts, entity_record_count(conn, tenant_id, entity)


def twins_of(
    conn: sa.Connection, tenant_id: str, entity: str, limit: int | None = None
) -> tuple[int, list[dict[str, Any]]]:
    """Email twins left out of the live set: how many, and the first `limit` of them (by id) as
    report rows (external_id, field, reason, raw). Entities without twins have none."""
    rows = entity_rows(entity)
    table = rows.table
    if "duplicate_of" not in table.c:
        return 0, []
    marked = (
        rows.of_tenant(tenant_id),
        table.c.is_deleted.is_(False),
        table.c.duplicate_of.is_not(None),
    )
    count = int(conn.execute(sa.select(sa.func.count()).where(*marked)).scalar_one())
    if limit == 0 or not count:
        return count, []
    query = sa.select(table.c.external_id, table.c.email, table.c.duplicate_of).where(*marked)
    query = query.order_by(table.c.external_id).limit(limit)
    rows = [
        {
            "external_id": r.external_id,
            "field": "email",
            "reason": f"duplicate email of record {r.duplicate_of}",
            "raw": {"email": r.email},
        }
        for r in conn.execute(query)
    ]
    return count, rows
