"""Load one page: clean rows upserted, rejected rows quarantined, cursor advanced — one transaction.

Because the cursor moves in the same transaction as the rows it covers, a crash at any moment
leaves the store at a page boundary: the next run re-reads from the committed cursor (minus the
lookback) and the modstamp-guarded upsert makes the overlap harmless.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from gtm_pipeline.store import (
    Cursor,
    UpsertBatch,
    get_cursor,
    prepare_upsert,
    save_cursor,
    upsert_records,
    write_upsert,
)
from gtm_pipeline.store.cursors import later
from gtm_pipeline.store.duplicates import twins_kept_marked
from gtm_pipeline.store.quarantine import drop_quarantined_rows, forget_failures, replace_failures
from gtm_pipeline.store.tables import entity_rows
from gtm_pipeline.store.written_keys import WrittenKeys
from gtm_pipeline.sync.entities import Entity
from gtm_pipeline.sync.prepare import GatedPage


def deleted_cursor_key(entity: Entity) -> str:
    """sync_state key of the cursor over deletions, kept apart from the one over modifications."""
    return f"{entity.name}:deleted"


def page_cursor(frame: pd.DataFrame) -> Cursor | None:
    """The largest `(system_modstamp, external_id)` in a page of canonical rows."""
    keyed = frame.dropna(subset=["system_modstamp", "external_id"])
    return largest_position(keyed["system_modstamp"], keyed["external_id"])


def largest_position(stamps: pd.Series, ids: pd.Series) -> Cursor | None:
    """The largest `(stamp, id)` of aligned columns of UTC timestamps and record Ids (None when
    empty). Two passes over the columns instead of sorting (~5% of a page's load time)."""
    if stamps.empty:
        return None
    newest = stamps.max()
    return Cursor(newest.to_pydatetime(), str(ids[stamps == newest].max()))


def _emails(clean: pd.DataFrame) -> list[str]:
    return clean["email"].dropna().tolist() if "email" in clean else []


def _twins_kept(
    conn: sa.Connection, table: sa.Table, tenant_id: str, ids: list[str], mark_twins: bool
) -> AbstractContextManager[set[str]]:
    """`twins_kept_marked`, or nothing while a first full sync defers the marks to its end."""
    return twins_kept_marked(conn, table, tenant_id, ids) if mark_twins else nullcontext(set())


@dataclass(frozen=True)
class ConvertedPage:
    """A gated page whose clean rows are converted for the store's driver, so that loading it is
    mostly statements: a sync makes it on the thread that runs the gates, not on the one that
    loads (the page's few quarantine rows are still converted when they are written)."""

    gated: GatedPage
    clean: UpsertBatch
    reached: Cursor | None
    """The largest cursor among the page's records, rejected ones included."""


def convert_page(
    dialect: sa.Dialect, tenant_id: str, entity: Entity, page: GatedPage, now: datetime
) -> ConvertedPage:
    """`page`'s clean rows converted for `dialect`'s store; `now` is the rows' `synced_at`."""
    rows = entity_rows(entity.name)
    clean = page.result.clean.assign(
        tenant_id=tenant_id,
        deleted_at=None,
        deleted_reason=None,
        synced_at=now,
        **rows.owner_values,
    )
    upsert = prepare_upsert(dialect, rows.table, clean)
    return ConvertedPage(page, upsert, page_cursor(page.canonical))


@dataclass(frozen=True)
class LoadedPage:
    """What loading a page (of records or of deletions) did."""

    loaded: int
    """Rows inserted or updated (an older version than the stored one is not counted)."""
    cursor: Cursor | None
    """The cursor saved, or with `hold_cursor` the largest one the page reached (not saved)."""


def advance_cursor(
    conn: sa.Connection,
    tenant_id: str,
    key: str,
    reached: Cursor | None,
    mode: str,
    stats: dict[str, Any] | None = None,
) -> Cursor | None:
    """Move the stored cursor `key` up to `reached` (never back) in `conn`; the new cursor."""
    cursor = later(get_cursor(conn, tenant_id, key), reached)
    if cursor is not None:
        save_cursor(conn, tenant_id, key, cursor, mode, stats)
    return cursor


def load_page(
    conn: sa.Connection,
    *,
    tenant_id: str,
    entity: Entity,
    page: ConvertedPage,
    mode: str,
    run_id: str | None,
    now: datetime,
    stats: dict[str, Any],
    hold_cursor: bool = False,
    mark_twins: bool = True,
    written: WrittenKeys | None = None,
) -> LoadedPage:
    """Upsert clean rows, quarantine rejected ones (their stored rows removed), keep email twins
    marked (unless `mark_twins` is False: see `store/duplicates.py`), advance the cursor: all
    in `conn`. `written`: as `write_upsert` takes it.

    `now` stamps the quarantine entries. `hold_cursor` leaves the stored cursor alone, for pages
    that come in no particular order (Bulk result sets): the caller advances it once every page
    up to it is committed.
    """
    gated = page.gated
    table = entity_rows(entity.name).table
    with _twins_kept(conn, table, tenant_id, gated.seen_ids, mark_twins) as emails:
        loaded = write_upsert(conn, page.clean, written=written)
        drop_quarantined_rows(conn, table, tenant_id, gated.rejected)
        emails.update(_emails(gated.result.clean))
    replace_failures(
        conn, tenant_id, entity.name, gated.seen_ids, gated.rejected, run_id=run_id, now=now
    )
    if hold_cursor:
        return LoadedPage(loaded=loaded, cursor=page.reached)
    cursor = advance_cursor(conn, tenant_id, entity.name, page.reached, mode, stats)
    return LoadedPage(loaded=loaded, cursor=cursor)


def load_deletions(
    conn: sa.Connection,
    *,
    tenant_id: str,
    entity: Entity,
    deleted: pd.DataFrame,
    mode: str,
    now: datetime,
    hold_cursor: bool = False,
    mark_twins: bool = True,
    written: WrittenKeys | None = None,
) -> LoadedPage:
    """Mark records deleted (rows kept; `deleted_at` = deletion stamp), drop their quarantine
    entries, hand a deleted survivor's twins over to the next one, and advance that cursor
    (unless `hold_cursor`; `hold_cursor`, `mark_twins` and `written` as for `load_page`)."""
    if deleted.empty:
        return LoadedPage(0, None)
    stamps = pd.to_datetime(deleted["SystemModstamp"], utc=True, format="ISO8601")
    owned = entity_rows(entity.name)
    rows = pd.DataFrame(
        {
            "tenant_id": tenant_id,
            "external_id": deleted["Id"].astype("str"),
            "system_modstamp": stamps,
            "is_deleted": True,
            "deleted_at": stamps,
            "deleted_reason": "deleted",
            "synced_at": now,
            **owned.owner_values,  # a record deleted before it was ever stored
        }
    )
    table = owned.table
    with _twins_kept(conn, table, tenant_id, rows["external_id"].tolist(), mark_twins):
        loaded = upsert_records(conn, table, rows, written=written)
    forget_failures(conn, tenant_id, entity.name, rows["external_id"].tolist())
    reached = page_cursor(rows)
    if hold_cursor:
        return LoadedPage(loaded=loaded, cursor=reached)
    cursor = advance_cursor(conn, tenant_id, deleted_cursor_key(entity), reached, mode)
    return LoadedPage(loaded=loaded, cursor=cursor)
