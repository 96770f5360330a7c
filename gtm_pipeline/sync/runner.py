"""The sync orchestrator: one entity of one tenant, full or incremental, page by page.

Reads modified records (`query`, ordered by `SystemModstamp, Id`, from the committed cursor minus
the lookback), then deleted ones (`queryAll`, `IsDeleted = true`, from their own cursor). Each page
is transformed, gated and loaded in its own transaction together with its cursor. No Dagster here:
callers (the Dagster assets, the CLI, tests) pass a client and an engine and get stats back.

A full sync of more records than the Bulk threshold (the REST first page's `totalSize`) reads
through one Bulk API 2.0 `queryAll` job instead (`sync/bulk_csv.py`): each result set is split into
live and deleted rows and loaded in its own transaction, but as result sets come in no promised
order the cursors move only in the last one's transaction, so an interrupted Bulk read is
re-read, never skipped. A failed job or an org without Bulk access falls back to REST pages
(`SyncStats.bulk_fallback` says why). Incremental syncs always use REST.

Batches flow through two background threads (`sync/read_ahead.py`): one fetches (REST pages,
Bulk result sets), one parses, gates and converts the clean rows for the store (`ConvertedPage`),
while the calling thread writes them (and the batch's quarantine entries and deletions) and
commits. Each hands over at most one batch ahead, so memory stays bounded, and the wait on
Salesforce and the database overlaps the Python work. Only the calling thread writes, so a crash
still leaves the store at a batch boundary.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from gtm_pipeline.config import DEFAULT_BULK_THRESHOLD
from gtm_pipeline.salesforce.bulk_jobs import (
    DEFAULT_MAX_RECORDS,
    BulkPollPolicy,
    BulkQuery,
    ResultSet,
)
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.salesforce.errors import BulkJobFailed, BulkUnavailable, SalesforceApiError
from gtm_pipeline.store import (
    Cursor,
    get_cursor,
    mark_run_started,
    mark_run_succeeded,
)
from gtm_pipeline.store.cursors import ever_succeeded
from gtm_pipeline.store.duplicates import defer_marks_if_first, settle_deferred_marks
from gtm_pipeline.sync.access import unreadable_reason
from gtm_pipeline.sync.bulk_csv import (
    BulkPlan,
    plan_bulk_query,
    read_result_set,
    split_deleted,
)
from gtm_pipeline.sync.entities import Entity, FieldMapping
from gtm_pipeline.sync.extract import FetchedPage, iter_raw_pages
from gtm_pipeline.sync.heap import long_lived_heap_frozen
from gtm_pipeline.sync.load import (
    ConvertedPage,
    LoadedPage,
    advance_cursor,
    convert_page,
    deleted_cursor_key,
    later,
    load_deletions,
    load_page,
)
from gtm_pipeline.sync.mapping import ResolvedMappings, resolve_mappings, selected_fields
from gtm_pipeline.sync.prepare import gate_page
from gtm_pipeline.sync.quality import QualityStats
from gtm_pipeline.sync.read_ahead import reading_ahead
from gtm_pipeline.sync.soql import deleted_query, modified_query

DEFAULT_LOOKBACK = timedelta(minutes=10)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncOptions:
    full: bool = False
    lookback: timedelta = DEFAULT_LOOKBACK
    batch_size: int = 2000
    run_id: str | None = None
    bulk_threshold: int | None = None
    """A full sync of more records than this reads through Bulk API 2.0; None is
    DEFAULT_BULK_THRESHOLD (50,000). Programs pass their settings' `bulk_threshold`
    (GTM_BULK_THRESHOLD): nothing under `sync/` reads the environment."""
    bulk_max_records: int = DEFAULT_MAX_RECORDS
    """Records per Bulk result set: the most held in memory at once."""
    bulk_poll: BulkPollPolicy = field(default_factory=BulkPollPolicy)
    load_batch_rows: int = 20_000
    """REST pages are joined until this many records before the gates and the load run on them
    (and commit with their cursor): the fixed cost of the Pandera passes and a transaction is
    then paid once per 20,000 records, not per 2,000-record page (20,000 rather than 10,000 made
    a 205,000-record REST sync ~20% faster). With the read-ahead, up to about three batches are
    in memory at once."""

    def __post_init__(self) -> None:
        if self.load_batch_rows < 1:
            raise ValueError("load_batch_rows must be at least 1")
        if self.bulk_threshold is not None and self.bulk_threshold < 0:
            raise ValueError("bulk_threshold cannot be negative")
        if self.bulk_max_records < 1:
            raise ValueError("bulk_max_records must be at least 1")


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
    extraction: str = "rest"
    """How the modified records were read: "rest" pages or one "bulk" job."""
    bulk_fallback: str | None = None
    """Why a Bulk read was abandoned for REST (a failed job, no Bulk access), if it was."""
    not_readable: str | None = None
    """Why nothing was read: the integration user may not read the object (`sync/access.py`)."""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["quality"] = self.quality.as_dict()
        return data


def _describe(cursor: Cursor | None) -> str | None:
    return None if cursor is None else f"{cursor.system_modstamp.isoformat()} {cursor.id}"


def _since(cursor: Cursor | None, lookback: timedelta) -> datetime | None:
    return None if cursor is None else cursor.system_modstamp - lookback


@dataclass
class _Run:
    """One entity's run: what every step needs, so the steps stay small functions."""

    client: SalesforceClient
    engine: sa.Engine
    tenant_id: str
    entity: Entity
    resolved: ResolvedMappings
    options: SyncOptions
    mode: str
    stats: SyncStats
    progress: Callable[[], dict[str, Any]]
    on_page: Callable[[PageProgress], None] | None
    twin_marks_deferred: bool
    """Email twins are marked once when the run ends, not page by page (a first full sync)."""

    def report(self, kind: str, number: int, total: int, rows: int, load: LoadedPage) -> None:
        if self.on_page:
            self.on_page(PageProgress(
                self.entity.name, kind, number, total, rows, load.loaded, load.cursor
            ))  # fmt: skip


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
    The process's long-lived heap is frozen while it runs (`sync/heap.py`).
    """
    with long_lived_heap_frozen():
        return _sync_entity(client, engine, tenant_id, entity, options, mappings, on_page)


def _sync_entity(
    client: SalesforceClient,
    engine: sa.Engine,
    tenant_id: str,
    entity: Entity,
    options: SyncOptions,
    mappings: Sequence[FieldMapping] | None,
    on_page: Callable[[PageProgress], None] | None,
) -> SyncStats:
    started = time.perf_counter()
    calls_before = client.calls_made
    with engine.begin() as conn:
        # Checked before the run is marked started: a refused mapping changes nothing.
        resolved = resolve_mappings(client, conn, tenant_id, entity, mappings)
    threshold = options.bulk_threshold
    if threshold is None:
        threshold = DEFAULT_BULK_THRESHOLD
    with engine.begin() as conn:
        cursor = get_cursor(conn, tenant_id, entity.name)
        deleted_cursor = get_cursor(conn, tenant_id, deleted_cursor_key(entity))
        # No cursor after a finished run: the object was empty. Reading it again is an
        # incremental read from the start, not another first full sync.
        first = cursor is None and not ever_succeeded(conn, tenant_id, entity.name)
        mode = "full" if options.full or first else "incremental"
        run_started_at = datetime.now(UTC)
        mark_run_started(conn, tenant_id, entity.name, mode, at=run_started_at)
        deferred = defer_marks_if_first(conn, tenant_id, entity.name, mode == "full")
    stats = SyncStats(
        entity=entity.name,
        mode=mode,
        cursor_before=_describe(cursor),
        mapping_warnings=list(resolved.warnings),
    )

    def progress() -> dict[str, Any]:
        stats.api_calls = client.calls_made - calls_before
        stats.seconds = round(time.perf_counter() - started, 3)
        return stats.as_dict()

    run = _Run(
        client, engine, tenant_id, entity, resolved, options, mode, stats, progress, on_page,
        twin_marks_deferred=deferred,
    )  # fmt: skip
    try:
        _read(run, cursor, deleted_cursor, threshold)
    except SalesforceApiError as exc:
        reason = None if stats.pages else unreadable_reason(client, entity.sf_object, exc)
        if reason is None:
            raise
        stats.not_readable = reason
        log.warning("%s: nothing read: %s", entity.name, reason)

    if stats.cursor_after is None:
        stats.cursor_after = stats.cursor_before
    final = progress()
    with engine.begin() as conn:
        if deferred:
            settle_deferred_marks(conn, tenant_id, entity.name, run_started_at)
        mark_run_succeeded(conn, tenant_id, entity.name, final)
    return stats


def _read(run: _Run, cursor: Cursor | None, deleted_cursor: Cursor | None, threshold: int) -> None:
    """Read and load the modified records (Bulk or REST), then the deleted ones."""
    entity, options = run.entity, run.options
    since = None if run.mode == "full" else _since(cursor, options.lookback)
    soql = modified_query(
        entity.sf_object,
        selected_fields(entity, run.resolved.mappings),
        since,
        with_archived=entity.archives,
    )
    pages: Iterator[FetchedPage] | None = iter_raw_pages(
        run.client, soql, batch_size=options.batch_size, include_deleted=entity.archives
    )
    if run.mode == "full" and pages is not None:
        pages = _bulk_or_rest(run, soql, pages, threshold)
    if pages is not None:
        _load_rest_pages(run, pages)
        # A full sync re-reads the whole recycle bin too, so it also repairs deletions that
        # became visible later than the lookback, exactly as it does for modifications.
        _load_rest_deletions(run, None if run.mode == "full" else deleted_cursor)


def _bulk_or_rest(
    run: _Run, soql: str, pages: Iterator[FetchedPage], threshold: int
) -> Iterator[FetchedPage] | None:
    """Read a full sync through Bulk when the REST count is above `threshold`.

    Returns the REST pages still to load, or None when Bulk read everything (deletions too).
    The REST first page is the count; when REST is kept, it is loaded, not fetched again.
    """
    first = next(pages, None)
    if first is None:
        return iter(())
    if first.total_size <= threshold:
        return itertools.chain([first], pages)
    try:
        _load_bulk(run, first.total_size)
    except (BulkUnavailable, BulkJobFailed) as exc:
        run.stats.bulk_fallback = str(exc)
        log.warning("%s: Bulk API read abandoned, reading through REST: %s", run.entity.name, exc)
        return iter_raw_pages(run.client, soql, batch_size=run.options.batch_size)
    return None


def _joined(pages: Sequence[FetchedPage]) -> FetchedPage:
    if len(pages) == 1:
        return pages[0]
    frame = pd.concat([p.frame for p in pages], ignore_index=True)
    return FetchedPage(frame, pages[-1].page_number, pages[-1].total_size)


def batched_pages(pages: Iterator[FetchedPage], rows: int) -> Iterator[tuple[FetchedPage, int]]:
    """Consecutive non-empty pages joined until at least `rows` records, with how many pages
    each batch holds. Pages come in cursor order, so a batch is a contiguous cursor range."""
    pending: list[FetchedPage] = []
    count = 0
    for page in pages:
        if page.frame.empty:
            continue
        pending.append(page)
        count += len(page.frame)
        if count >= rows:
            yield _joined(pending), len(pending)
            pending, count = [], 0
    if pending:
        yield _joined(pending), len(pending)


def _load_rest_pages(run: _Run, pages: Iterator[FetchedPage]) -> None:
    stats = run.stats
    batches = batched_pages(pages, run.options.load_batch_rows)
    with (
        reading_ahead(batches, name="rest-pages") as fetched,
        reading_ahead(_converted_batches(run, fetched), name="rest-gates") as converted_batches,
    ):
        for page, page_count, converted in converted_batches:
            _count_page(stats, page.frame, converted, pages=page_count)
            with run.engine.begin() as conn:
                loaded = _load_live(run, conn, converted, hold_cursor=False)
            stats.cursor_after = _describe(loaded.cursor)
            run.report("modified", page.page_number, page.total_size, len(page.frame), loaded)


def _converted_batches(
    run: _Run, batches: Iterator[tuple[FetchedPage, int]]
) -> Iterator[tuple[FetchedPage, int, ConvertedPage]]:
    for page, page_count in batches:
        yield page, page_count, _gate_and_convert(run, page.frame)


def _gate_and_convert(run: _Run, frame: pd.DataFrame) -> ConvertedPage:
    """Gates and the clean rows' conversion for the store: run on a read-ahead thread, so the
    loading thread spends its time sending statements."""
    page = gate_page(run.entity, frame, run.resolved.mappings, tenant_id=run.tenant_id)
    return convert_page(run.engine.dialect, run.tenant_id, run.entity, page, datetime.now(UTC))


def _load_rest_deletions(run: _Run, deleted_cursor: Cursor | None) -> None:
    deleted_since = None if deleted_cursor is None else _since(deleted_cursor, run.options.lookback)
    for page in iter_raw_pages(
        run.client,
        deleted_query(run.entity.sf_object, deleted_since),
        include_deleted=True,
        batch_size=run.options.batch_size,
    ):
        if page.frame.empty:
            continue
        run.stats.pages += 1
        with run.engine.begin() as conn:
            loaded = _load_gone(run, conn, page.frame, hold_cursor=False)
        run.stats.rows_deleted += loaded.loaded
        run.report("deleted", page.page_number, page.total_size, len(page.frame), loaded)


def _load_bulk(run: _Run, total_size: int) -> None:
    """Every record (live and deleted) through one Bulk queryAll job, a result set at a time.

    Result sets come in no promised order, so each is committed with the cursors held back;
    the last one's transaction moves both cursors to the largest positions seen.
    """
    plan = plan_bulk_query(run.client, run.entity, run.resolved.mappings)
    bulk = BulkQuery(run.client, run.options.bulk_poll)
    results = bulk.run(plan.soql, include_deleted=True, max_records=run.options.bulk_max_records)
    held = _HeldCursors()
    with (
        reading_ahead(results, name="bulk-downloads") as downloads,
        reading_ahead(_converted_sets(run, downloads, plan), name="bulk-gates") as converted_sets,
    ):
        for result, live, gone, converted in converted_sets:
            _load_result_set(run, held, result, live, gone, converted, total_size)


@dataclass
class _HeldCursors:
    """The largest positions a Bulk read has committed rows up to, saved with the last set."""

    modified: Cursor | None = None
    deleted: Cursor | None = None


def _load_result_set(
    run: _Run,
    held: _HeldCursors,
    result: ResultSet,
    live: pd.DataFrame,
    gone: pd.DataFrame,
    converted: ConvertedPage | None,
    total_size: int,
) -> None:
    stats = run.stats
    stats.extraction = "bulk"
    if converted is not None:
        _count_page(stats, live, converted)
    elif not gone.empty:
        stats.pages += 1
    with run.engine.begin() as conn:
        loaded = 0
        if converted is not None:
            page_load = _load_live(run, conn, converted, hold_cursor=True)
            loaded, held.modified = page_load.loaded, later(held.modified, page_load.cursor)
        if not gone.empty:
            deleted = _load_gone(run, conn, gone, hold_cursor=True)
            stats.rows_deleted += deleted.loaded
            held.deleted = later(held.deleted, deleted.cursor)
        # Progress reports committed cursors only: None until the last result set.
        committed = None
        if result.last:
            committed = _commit_cursors(run, conn, held.modified, held.deleted)
    rows = len(live) + len(gone)
    run.report("bulk", result.number, total_size, rows, LoadedPage(loaded, committed))


def _converted_sets(
    run: _Run, results: Iterator[ResultSet], plan: BulkPlan
) -> Iterator[tuple[ResultSet, pd.DataFrame, pd.DataFrame, ConvertedPage | None]]:
    """Each result set with its live rows (gated and converted, if any) and deleted rows, its
    CSV bytes released once parsed."""
    for result in results:
        live, gone = split_deleted(read_result_set(result.csv, plan))
        converted = None if live.empty else _gate_and_convert(run, live)
        yield replace(result, csv=b""), live, gone, converted


def _commit_cursors(
    run: _Run, conn: sa.Connection, reached: Cursor | None, reached_deleted: Cursor | None
) -> Cursor | None:
    cursor = advance_cursor(conn, run.tenant_id, run.entity.name, reached, run.mode, run.progress())
    advance_cursor(conn, run.tenant_id, deleted_cursor_key(run.entity), reached_deleted, run.mode)
    if cursor is not None:
        run.stats.cursor_after = _describe(cursor)
    return cursor


def _count_page(stats: SyncStats, frame: Any, converted: ConvertedPage, pages: int = 1) -> None:
    gated = converted.gated
    stats.pages += pages
    stats.rows_read += len(frame)
    stats.rows_rejected += gated.result.stats.failed + gated.raw_rejected
    stats.duplicates_removed += gated.result.stats.duplicates_removed
    stats.quality.add(gated.result.stats)


def _load_live(
    run: _Run, conn: sa.Connection, page: ConvertedPage, *, hold_cursor: bool
) -> LoadedPage:
    loaded = load_page(
        conn,
        tenant_id=run.tenant_id,
        entity=run.entity,
        page=page,
        mode=run.mode,
        run_id=run.options.run_id,
        now=datetime.now(UTC),
        stats=run.progress(),
        hold_cursor=hold_cursor,
        mark_twins=not run.twin_marks_deferred,
    )
    run.stats.rows_loaded += loaded.loaded
    return loaded


def _load_gone(run: _Run, conn: sa.Connection, frame: Any, *, hold_cursor: bool) -> LoadedPage:
    return load_deletions(
        conn,
        tenant_id=run.tenant_id,
        entity=run.entity,
        deleted=frame,
        mode=run.mode,
        now=datetime.now(UTC),
        hold_cursor=hold_cursor,
        mark_twins=not run.twin_marks_deferred,
    )
