"""The sync orchestrator: one entity of one tenant, full or incremental, page by page.

Reads modified records (`query`, ordered by `SystemModstamp, Id`, from the committed cursor minus
the lookback), then deleted ones (`queryAll`, `IsDeleted = true`, from their own cursor). Each page
is transformed, gated and loaded in its own transaction together with its cursor. No Dagster here:
callers (the Dagster assets, the CLI, tests) pass a client and an engine and get stats back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.store import Cursor, get_cursor, mark_run_started, mark_run_succeeded
from gtm_pipeline.sync.entities import Entity, FieldMapping
from gtm_pipeline.sync.extract import iter_raw_pages
from gtm_pipeline.sync.load import deleted_cursor_key, load_deletions, load_page
from gtm_pipeline.sync.mapping import resolve_mappings, source_fields
from gtm_pipeline.sync.prepare import prepare_page
from gtm_pipeline.sync.quality import QualityStats
from gtm_pipeline.sync.soql import deleted_query, modified_query

DEFAULT_LOOKBACK = timedelta(minutes=10)


@dataclass(frozen=True)
class SyncOptions:
    full: bool = False
    lookback: timedelta = DEFAULT_LOOKBACK
    batch_size: int = 2000
    run_id: str | None = None


@dataclass(frozen=True)
class PageProgress:
    """Reported after each committed page, for logs and progress bars."""

    entity: str
    kind: str  # "modified" or "deleted"
    page_number: int
    total_size: int
    rows: int
    loaded: int
    cursor: Cursor | None


@dataclass
class SyncStats:
    entity: str
    mode: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    duplicates_removed: int = 0
    rows_deleted: int = 0
    pages: int = 0
    api_calls: int = 0
    cursor_before: str | None = None
    cursor_after: str | None = None
    seconds: float = 0.0
    quality: QualityStats = field(default_factory=QualityStats)
    mapping_warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["quality"] = self.quality.as_dict()
        return data


def _describe(cursor: Cursor | None) -> str | None:
    return None if cursor is None else f"{cursor.system_modstamp.isoformat()} {cursor.id}"


def _since(cursor: Cursor | None, lookback: timedelta) -> datetime | None:
    return None if cursor is None else cursor.system_modstamp - lookback


def sync_entity(
    client: SalesforceClient,
    engine: sa.Engine,
    tenant_id: str,
    entity: Entity,
    options: SyncOptions = SyncOptions(),
    *,
    mappings: Sequence[FieldMapping] | None = None,
    on_page: Callable[[PageProgress], None] | None = None,
) -> SyncStats:
    """Bring one entity of one tenant up to date with Salesforce; returns what it did.

    `mappings` defaults to the tenant's effective mappings from the store; anything but the
    entity's defaults is validated against the org's (cached) describe before the first query.
    """
    started = time.perf_counter()
    calls_before = client.calls_made
    with engine.begin() as conn:
        # Checked before the run is marked started: a refused mapping changes nothing.
        resolved = resolve_mappings(client, conn, tenant_id, entity, mappings)
    with engine.begin() as conn:
        cursor = get_cursor(conn, tenant_id, entity.name)
        deleted_cursor = get_cursor(conn, tenant_id, deleted_cursor_key(entity))
        mode = "full" if options.full or cursor is None else "incremental"
        mark_run_started(conn, tenant_id, entity.name, mode)
    stats = SyncStats(
        entity=entity.name,
        mode=mode,
        cursor_before=_describe(cursor),
        mapping_warnings=list(resolved.warnings),
    )
    since = None if mode == "full" else _since(cursor, options.lookback)
    fields = source_fields(resolved.mappings)

    def progress() -> dict[str, Any]:
        stats.api_calls = client.calls_made - calls_before
        stats.seconds = round(time.perf_counter() - started, 3)
        return stats.as_dict()

    soql = modified_query(entity.sf_object, fields, since)
    for page in iter_raw_pages(client, soql, batch_size=options.batch_size):
        if page.frame.empty:
            continue
        prepared = prepare_page(entity, page.frame, resolved.mappings, tenant_id=tenant_id)
        stats.pages += 1
        stats.rows_read += len(page.frame)
        stats.rows_rejected += prepared.result.stats.failed + prepared.raw_rejected
        stats.duplicates_removed += prepared.result.stats.duplicates_removed
        stats.quality.add(prepared.result.stats)
        with engine.begin() as conn:
            loaded = load_page(
                conn,
                tenant_id=tenant_id,
                entity=entity,
                page=prepared,
                mode=mode,
                run_id=options.run_id,
                now=datetime.now(UTC),
                stats=progress(),
            )
        stats.rows_loaded += loaded.loaded
        stats.cursor_after = _describe(loaded.cursor)
        if on_page:
            on_page(PageProgress(entity.name, "modified", page.page_number, page.total_size,
                                 len(page.frame), loaded.loaded, loaded.cursor))  # fmt: skip

    # A full sync re-reads the whole recycle bin too, so it also repairs deletions that became
    # visible later than the lookback, exactly as it does for modifications.
    full_deletions = mode == "full" or deleted_cursor is None
    deleted_since = None if full_deletions else _since(deleted_cursor, options.lookback)
    for page in iter_raw_pages(
        client,
        deleted_query(entity.sf_object, deleted_since),
        include_deleted=True,
        batch_size=options.batch_size,
    ):
        if page.frame.empty:
            continue
        stats.pages += 1
        with engine.begin() as conn:
            loaded = load_deletions(
                conn,
                tenant_id=tenant_id,
                entity=entity,
                deleted=page.frame,
                mode=mode,
                now=datetime.now(UTC),
            )
        stats.rows_deleted += loaded.loaded
        if on_page:
            on_page(PageProgress(entity.name, "deleted", page.page_number, page.total_size,
                                 len(page.frame), loaded.loaded, loaded.cursor))  # fmt: skip

    if stats.cursor_after is None:
        stats.cursor_after = stats.cursor_before
    final = progress()
    with engine.begin() as conn:
        mark_run_succeeded(conn, tenant_id, entity.name, final)
    return stats
