"""The sync orchestrator: one entity of one tenant, full or incremental, page by page.

Reads modified records (`query`, ordered by `SystemModstamp, Id`, from the committed cursor minus
the lookback), then deleted ones (`queryAll`, `IsDeleted = true`, from their own cursor). Each page
is transformed, gated and loaded in its own transaction together with its cursor. No Dagster here:
callers (the Dagster assets, the CLI, tests) pass a client and an engine and get stats back.

A full sync of more records than the Bulk threshold (a `COUNT()` query's answer) reads
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
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from gtm_pipeline.config import (
    DEFAULT_BULK_THRESHOLD,
    DEFAULT_PARALLEL_READS,
    MAX_PARALLEL_READS,
)
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
from gtm_pipeline.store.cursors import ever_succeeded, later
from gtm_pipeline.store.duplicates import defer_marks_if_first, settle_deferred_marks
from gtm_pipeline.store.slices import (
    Slice,
    SliceProgress,
    drop_plan,
    furthest_position,
    load_plan,
    read_through,
    record_progress,
    save_plan,
)
from gtm_pipeline.store.tables import entity_rows
from gtm_pipeline.store.written_keys import WrittenKeys
from gtm_pipeline.sync.access import unreadable_reason
from gtm_pipeline.sync.bulk_csv import (
    BulkPlan,
    plan_bulk_query,
    read_result_set,
    split_deleted,
    windowed,
)
from gtm_pipeline.sync.entities import Entity, FieldMapping
from gtm_pipeline.sync.extract import FetchedPage, iter_raw_pages, joined_pages
from gtm_pipeline.sync.heap import long_lived_heap_frozen
from gtm_pipeline.sync.load import (
    ConvertedPage,
    LoadedPage,
    advance_cursor,
    convert_page,
    deleted_cursor_key,
    load_deletions,
    load_page,
)
from gtm_pipeline.sync.mapping import ResolvedMappings, resolve_mappings, selected_fields
from gtm_pipeline.sync.prepare import gate_page
from gtm_pipeline.sync.quality import QualityStats
from gtm_pipeline.sync.read_ahead import reading_ahead
from gtm_pipeline.sync.slice_reader import (
    ReadSlots,
    SliceBatch,
    SlicePage,
    SliceStart,
    batched_slice_pages,
    head_of_first_slice,
    oldest_stamp,
    page_position,
    read_slices,
    rest_slice_pages,
)
from gtm_pipeline.sync.slices import (
    RECORDS_PER_SLICE,
    end_stamps,
    plan_slices,
    read_total,
    slice_count,
)
from gtm_pipeline.sync.soql import deleted_query, modified_query

DEFAULT_LOOKBACK = timedelta(minutes=10)
BULK_SETS_IN_HAND = 1
"""Bulk result sets of a parallel read downloaded and parsed at once, whatever the slices (the
next download overlaps the load of the one before): each is up to `bulk_max_records` rows, so
this bounds the read's memory. Reading 1,000,000 Contacts in 8 slices peaked at 780 MB with every
slice holding a set, 630 MB with two at once, 534 MB with one, and took as long."""
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncOptions:
    full: bool = False
    lookback: timedelta = DEFAULT_LOOKBACK
    batch_size: int = 2000
    run_id: str | None = None
    bulk_threshold: int | None = None
    """A full sync of more records than this reads through Bulk API 2.0; None is
    DEFAULT_BULK_THRESHOLD (200,000). Programs pass their settings' `bulk_threshold`
    (GTM_BULK_THRESHOLD): nothing under `sync/` reads the environment."""
    bulk_max_records: int = DEFAULT_MAX_RECORDS
    """Records per Bulk result set: the most held in memory at once."""
    bulk_poll: BulkPollPolicy = field(default_factory=BulkPollPolicy)
    parallel_reads: int = DEFAULT_PARALLEL_READS
    """Slices a full read of many records is split into and read at once (1: serial). Programs
    pass their settings' `parallel_reads` (GTM_PARALLEL_READS); at most MAX_PARALLEL_READS, as
    Salesforce keeps at most 10 query cursors of a user open (8 leaves two for other work)."""
    min_slice_records: int = RECORDS_PER_SLICE
    """The fewest records a slice is planned for: a smaller read stays serial."""
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
        if self.min_slice_records < 1:
            raise ValueError("min_slice_records must be at least 1")
        if not 1 <= self.parallel_reads <= MAX_PARALLEL_READS:
            raise ValueError(f"parallel_reads must be between 1 and {MAX_PARALLEL_READS}")


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
    slices: int = 0
    """SystemModstamp slices the full read was split into and read at once (0: none)."""

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
    written: WrittenKeys | None
    """The keys this run has written, when the tenant had none of the entity's rows as it started
    (a first full sync): rows not among them are copied in as new (`store/written_keys.py`)."""
    read_slots: ReadSlots
    """The query cursors its REST reads (serial or in slices) may hold open, shared with the
    entities read at once."""

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
    read_slots: ReadSlots | None = None,
) -> SyncStats:
    """Bring one entity of one tenant up to date with Salesforce; returns what it did.

    `mappings` defaults to the tenant's effective mappings from the store; anything but the
    entity's defaults is validated against the org's (cached) describe before the first query.
    `read_slots`: the cursors shared with other entities read at the same time (default: the
    entity's own `parallel_reads`). The process's long-lived heap is frozen while it runs
    (`sync/heap.py`).
    """
    slots = ReadSlots(options.parallel_reads) if read_slots is None else read_slots
    with long_lived_heap_frozen():
        return _sync_entity(client, engine, tenant_id, entity, options, mappings, on_page, slots)


def _sync_entity(
    client: SalesforceClient,
    engine: sa.Engine,
    tenant_id: str,
    entity: Entity,
    options: SyncOptions,
    mappings: Sequence[FieldMapping] | None,
    on_page: Callable[[PageProgress], None] | None,
    read_slots: ReadSlots,
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
        # A full read left unfinished (its slices' plan is still stored) is finished first.
        unfinished = load_plan(conn, tenant_id, entity.name)
        mode = "full" if options.full or first or unfinished else "incremental"
        run_started_at = datetime.now(UTC)
        mark_run_started(conn, tenant_id, entity.name, mode, at=run_started_at)
        starts_empty = mode == "full" and not entity_rows(entity.name).stored_for(conn, tenant_id)
        deferred = defer_marks_if_first(conn, tenant_id, entity.name, starts_empty)
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
        twin_marks_deferred=deferred, read_slots=read_slots,
        written=WrittenKeys() if starts_empty else None,
    )  # fmt: skip
    try:
        _read(run, cursor, deleted_cursor, threshold, unfinished)
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


def _read(
    run: _Run,
    cursor: Cursor | None,
    deleted_cursor: Cursor | None,
    threshold: int,
    unfinished: Sequence[SliceProgress],
) -> None:
    """Read and load the modified records, then the deleted ones; `unfinished`: the plan of an
    interrupted parallel read, finished first."""
    if run.mode == "full":
        if _read_everything(run, threshold, unfinished):
            return
        # A full sync re-reads the whole recycle bin too, so it also repairs deletions that
        # became visible later than the lookback, exactly as it does for modifications.
        _load_rest_deletions(run, None)
        return
    _read_changes(run, _since(cursor, run.options.lookback))
    _load_rest_deletions(run, deleted_cursor)


def _read_changes(run: _Run, since: datetime | None) -> None:
    """An incremental read: serial, unless its window holds enough records for several slices
    (a mass update, a long pause), which are then read in parallel like a full read's."""
    with run.read_slots.held():  # the count page's cursor reads on unless the read is sliced
        pages = _modified_pages(run, since)
        first = next(pages, None)
        if first is None:
            return
        slices = 1 if first.frame.empty else _slices_for(run, first.total_size, bulk=False)
        if slices == 1:
            _load_rest_pages(run, itertools.chain([first], pages))
            return
        pages.close()
    plan = _new_plan(run, oldest_stamp(first.frame), slices, "rest", since=since)
    _read_plan(run, plan, head=first)


def _slices_for(run: _Run, total: int, *, bulk: bool) -> int:
    """How many slices a read of `total` records takes (1: serial)."""
    options = run.options
    return slice_count(total, options.parallel_reads, options.min_slice_records, bulk=bulk)


def _modified_pages(
    run: _Run, since: datetime | None, until: datetime | None = None
) -> Iterator[FetchedPage]:
    return iter_raw_pages(
        run.client,
        _modified_soql(run, since, until),
        batch_size=run.options.batch_size,
        include_deleted=run.entity.archives,
    )


def _modified_soql(
    run: _Run, since: datetime | None, until: datetime | None = None, after_id: str | None = None
) -> str:
    return modified_query(
        run.entity.sf_object,
        selected_fields(run.entity, run.resolved.mappings),
        since,
        with_archived=run.entity.archives,
        until=until,
        after_id=after_id,
    )


def _read_everything(run: _Run, threshold: int, plan: Sequence[SliceProgress]) -> bool:
    """A full read of the modified records; True when it read the deleted ones too (Bulk).

    A `plan` of slices left by an interrupted run is resumed. Otherwise a `COUNT()` query says
    how many records there are. Enough for several slices (`sync/slices.py`): read in parallel
    slices, one Bulk job each above `threshold`, REST pages below it. Fewer: one Bulk job above
    the threshold, else page after page. A Bulk read that fails falls back to REST.
    """
    if plan:
        _read_plan(run, plan)
        return False
    entity = run.entity
    total = read_total(run.client, entity.sf_object, entity.archives)
    bulk = total > threshold
    slices = _slices_for(run, total, bulk=bulk)
    if slices > 1:
        oldest, newest = end_stamps(run.client, entity.sf_object, entity.archives)
        if oldest is not None:
            plan = _new_plan(run, oldest, slices, "bulk" if bulk else "rest", newest=newest)
            _read_plan(run, plan)
            return False
    if bulk:
        try:
            _load_bulk(run, total)
            return True
        except (BulkUnavailable, BulkJobFailed) as exc:
            _note_bulk_fallback(run, exc)
    with run.read_slots.held():
        _load_rest_pages(run, _modified_pages(run, None))
    return False


def _note_bulk_fallback(run: _Run, exc: Exception) -> None:
    run.stats.bulk_fallback, run.stats.extraction = str(exc), "rest"
    log.warning("%s: Bulk API read abandoned, reading through REST: %s", run.entity.name, exc)


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
            yield joined_pages(pending), len(pending)
            pending, count = [], 0
    if pending:
        yield joined_pages(pending), len(pending)


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


def _read_plan(run: _Run, plan: Sequence[SliceProgress], head: FetchedPage | None = None) -> None:
    """Read a plan's unfinished slices; Bulk jobs that fail leave the rest of it to REST."""
    try:
        _load_slices(run, plan, head)
    except (BulkUnavailable, BulkJobFailed) as exc:
        _note_bulk_fallback(run, exc)
        with run.engine.begin() as conn:
            read_through(conn, run.tenant_id, run.entity.name, "rest")
            plan = load_plan(conn, run.tenant_id, run.entity.name)
        _load_slices(run, plan)


def _new_plan(
    run: _Run,
    oldest: datetime,
    slices: int,
    extraction: str,
    since: datetime | None = None,
    newest: datetime | None = None,
) -> list[SliceProgress]:
    """Plan the slices of a read from `since` on (None: a full read) and store the plan."""
    planned = plan_slices(
        run.client,
        run.entity.sf_object,
        oldest=oldest,
        slices=slices,
        with_archived=run.entity.archives,
        since=since,
        newest=newest,
    )
    with run.engine.begin() as conn:
        save_plan(conn, run.tenant_id, run.entity.name, planned, datetime.now(UTC), extraction)
    return [SliceProgress(piece, None, False, extraction) for piece in planned]


def _load_slices(run: _Run, plan: Sequence[SliceProgress], head: FetchedPage | None = None) -> None:
    """Read the unfinished slices of `plan` at once, a fetching thread each; gates run on one
    more thread and this one writes, committing each slice's position with its rows. The
    transaction that stores the last slice's last rows also moves the entity's cursor to the
    furthest position read and drops the plan.

    `head`, the count page of a new plan, holds the oldest records: the first slice's first
    page (or all of it), so it is loaded instead of fetched again."""
    run.stats.slices = len(plan)
    unread = {p.slice.number: p for p in plan if not p.done}
    finished = {p.slice.number for p in plan if p.done}
    starts = {number: _resume_from(p, run.options.lookback) for number, p in unread.items()}
    first: list[SlicePage] = []
    if head is not None:
        first = [head_of_first_slice(head, plan[0].slice)]
        if first[0].last:
            del starts[0]
        elif first[0].reached is not None:
            starts[0] = first[0].reached
    if plan and plan[0].extraction == "bulk":
        run.stats.extraction = "bulk"
        bulk_plan = plan_bulk_query(run.client, run.entity, run.resolved.mappings)
        downloads = threading.BoundedSemaphore(BULK_SETS_IN_HAND)
        sources = {n: _bulk_source(run, bulk_plan, unread[n].slice, downloads) for n in starts}
        pages = read_slices(sources, depth=1)  # a Bulk job holds no query cursor
    else:
        sources = {n: _rest_source(run, unread[n].slice, start) for n, start in starts.items()}
        # REST pages are small: one may wait for each slice reading at once (holding a slot)
        depth = max(1, min(len(sources), run.read_slots.slots))
        pages = read_slices(sources, depth=depth, slots=run.read_slots)
    batches = batched_slice_pages(itertools.chain(first, pages), run.options.load_batch_rows)
    with reading_ahead(_gated_slice_batches(run, batches), name="slice-gates") as gated:
        for batch, converted in gated:
            finished |= batch.finished
            _store_slice_batch(run, batch, converted, all_read=len(finished) == len(plan))
    if not sources:  # every slice was read before: only the plan's end is left to commit
        with run.engine.begin() as conn:
            _finish_plan(run, conn)


def _rest_source(run: _Run, piece: Slice, start: SliceStart) -> Callable[[], Iterator[SlicePage]]:
    def query(start: SliceStart) -> str:
        if isinstance(start, Cursor):
            return _modified_soql(run, start.system_modstamp, piece.upper, after_id=start.id)
        if start is None or (piece.lower is not None and piece.lower > start):
            start = piece.lower
        return _modified_soql(run, start, piece.upper)

    return lambda: rest_slice_pages(
        run.client,
        piece.number,
        query,
        start,
        include_deleted=run.entity.archives,
        batch_size=run.options.batch_size,
    )


def _bulk_source(
    run: _Run, plan: BulkPlan, piece: Slice, downloads: threading.BoundedSemaphore
) -> Callable[[], Iterator[SlicePage]]:
    """One Bulk job for the slice's live records. The jobs run at once (Salesforce runs them
    server-side); a result set is downloaded and parsed only while one of the `downloads`
    permits is held, until the loader took it, so at most that many sets wait in memory however
    many slices there are. Result sets come in no promised order, so the slice's position is
    handed over with its last set only: an interrupted job's slice is read again in full."""
    soql = windowed(plan, piece.lower, piece.upper, with_archived=run.entity.archives)

    def pages() -> Iterator[SlicePage]:
        bulk = BulkQuery(run.client, run.options.bulk_poll)
        job = bulk.create(soql, include_deleted=run.entity.archives)
        bulk.wait(job.id)
        results = bulk.result_sets(job.id, max_records=run.options.bulk_max_records)
        reached: Cursor | None = None
        while True:
            with downloads:
                result = next(results, None)
                if result is None:
                    break
                live, _ = split_deleted(read_result_set(result.csv, plan))
                reached = later(reached, page_position(live))
                position = reached if result.last else None
                page = FetchedPage(live, result.number, 0)
                yield SlicePage(piece.number, page, position, result.last)
        bulk.delete(job.id)

    return pages


def _resume_from(progress: SliceProgress, lookback: timedelta) -> SliceStart:
    """Where an interrupted slice starts again: its committed position minus the lookback, so a
    commit that became visible late behind it is read too (with no lookback: right after it)."""
    if progress.cursor is None or not lookback:
        return progress.cursor
    return progress.cursor.system_modstamp - lookback


def _gated_slice_batches(
    run: _Run, batches: Iterator[SliceBatch]
) -> Iterator[tuple[SliceBatch, ConvertedPage | None]]:
    for batch in batches:
        converted = None if batch.page is None else _gate_and_convert(run, batch.page.frame)
        yield batch, converted


def _store_slice_batch(
    run: _Run, batch: SliceBatch, converted: ConvertedPage | None, *, all_read: bool
) -> None:
    loaded, cursor = 0, None
    with run.engine.begin() as conn:
        if converted is not None and batch.page is not None:
            _count_page(run.stats, batch.page.frame, converted, pages=batch.pages)
            loaded = _load_live(run, conn, converted, hold_cursor=True).loaded
        for number in batch.reached.keys() | batch.finished:
            record_progress(
                conn,
                run.tenant_id,
                run.entity.name,
                number,
                batch.reached.get(number),
                done=number in batch.finished,
            )
        if all_read:
            cursor = _finish_plan(run, conn)
    if batch.page is not None:
        page = batch.page
        run.report(
            "slices", page.page_number, page.total_size, len(page.frame), LoadedPage(loaded, cursor)
        )


def _finish_plan(run: _Run, conn: sa.Connection) -> Cursor | None:
    reached = furthest_position(conn, run.tenant_id, run.entity.name)
    drop_plan(conn, run.tenant_id, run.entity.name)
    cursor = advance_cursor(conn, run.tenant_id, run.entity.name, reached, run.mode, run.progress())
    if cursor is not None:
        run.stats.cursor_after = _describe(cursor)
    return cursor


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
    with run.read_slots.held():
        _load_deleted_pages(run, deleted_since)


def _load_deleted_pages(run: _Run, deleted_since: datetime | None) -> None:
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
        written=run.written,
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
        written=run.written,
    )
