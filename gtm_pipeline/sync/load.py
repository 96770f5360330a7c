"""Load one page: clean rows upserted, rejected rows quarantined, cursor advanced — one transaction.

Because the cursor moves in the same transaction as the rows it covers, a crash at any moment
leaves the store at a page boundary: the next run re-reads from the committed cursor (minus the
lookback) and the modstamp-guarded upsert makes the overlap harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from gtm_pipeline.store import CANONICAL_TABLES, Cursor, get_cursor, save_cursor, upsert_records
from gtm_pipeline.store.quarantine import replace_failures
from gtm_pipeline.sync.entities import Entity
from gtm_pipeline.sync.prepare import PreparedPage


def deleted_cursor_key(entity: Entity) -> str:
    """sync_state key of the cursor over deletions, kept apart from the one over modifications."""
    return f"{entity.name}:deleted"


def page_cursor(frame: pd.DataFrame) -> Cursor | None:
    """The largest `(system_modstamp, external_id)` in a page of canonical rows."""
    keyed = frame.dropna(subset=["system_modstamp", "external_id"])
    if keyed.empty:
        return None
    last = keyed.sort_values(["system_modstamp", "external_id"], kind="stable").iloc[-1]
    return Cursor(last["system_modstamp"].to_pydatetime(), str(last["external_id"]))


def later(a: Cursor | None, b: Cursor | None) -> Cursor | None:
    if a is None or b is None:
        return a or b
    return max(a, b, key=lambda c: (c.system_modstamp, c.id))


@dataclass(frozen=True)
class PageLoad:
    loaded: int
    cursor: Cursor | None


def load_page(
    conn: sa.Connection,
    *,
    tenant_id: str,
    entity: Entity,
    page: PreparedPage,
    mode: str,
    run_id: str | None,
    now: datetime,
    stats: dict[str, Any],
) -> PageLoad:
    """Upsert clean rows, quarantine rejected ones, advance the cursor: all in `conn`."""
    clean = page.result.clean.assign(tenant_id=tenant_id, deleted_at=None, synced_at=now)
    loaded = upsert_records(conn, CANONICAL_TABLES[entity.name], clean)
    replace_failures(
        conn, tenant_id, entity.name, page.seen_ids, page.rejected, run_id=run_id, now=now
    )
    cursor = later(get_cursor(conn, tenant_id, entity.name), page_cursor(page.canonical))
    if cursor is not None:
        save_cursor(conn, tenant_id, entity.name, cursor, mode, stats)
    return PageLoad(loaded=loaded, cursor=cursor)


def load_deletions(
    conn: sa.Connection,
    *,
    tenant_id: str,
    entity: Entity,
    deleted: pd.DataFrame,
    mode: str,
    now: datetime,
) -> PageLoad:
    """Mark records deleted (rows kept; `deleted_at` = deletion stamp); advance that cursor."""
    if deleted.empty:
        return PageLoad(0, None)
    stamps = pd.to_datetime(deleted["SystemModstamp"], utc=True, format="ISO8601")
    rows = pd.DataFrame(
        {
            "tenant_id": tenant_id,
            "external_id": deleted["Id"].astype("str"),
            "system_modstamp": stamps,
            "is_deleted": True,
            "deleted_at": stamps,
            "synced_at": now,
        }
    )
    loaded = upsert_records(conn, CANONICAL_TABLES[entity.name], rows)
    key = deleted_cursor_key(entity)
    cursor = later(get_cursor(conn, tenant_id, key), page_cursor(rows))
    if cursor is not None:
        save_cursor(conn, tenant_id, key, cursor, mode)
    return PageLoad(loaded=loaded, cursor=cursor)
