"""Reading slices at once: one thread per slice follows its query's pages, all of them handing
their pages to one consumer through one bounded queue.

Each slice's pages reach the consumer in that slice's cursor order (pages of different slices
interleave), each with the position its last record reached and whether it ends the slice, so
the consumer can commit a slice's progress with the rows it covers. At most `depth` pages wait
in the queue (plus one in each thread's hands): memory stays bounded whatever the store's pace,
and fetching only waits when that many pages are ahead of the gates.

A source is whatever produces one slice's pages: REST pages (`rest_slice_pages`) or one Bulk
job's result sets (the runner's). A REST slice keeps a query cursor open while it reads, so its
thread first takes one of the run's `ReadSlots` and holds it until the slice ends: a slice
waiting for a slot starts when another ends, and entities read at once
(`sync/entities_at_once.py`) share one budget of cursors. A REST query cursor that Salesforce no
longer knows (`INVALID_QUERY_LOCATOR`: expired, or released because too many were open) is
opened again right after the last record the slice read. Any other error is handed to the
consumer, which raises it where its item would have come; closing the iterator (the consumer's
block ending, however it ends) stops every thread and joins it before returning, so no thread
uses the client after the run moved on.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import pandas as pd

from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.salesforce.errors import SalesforceApiError
from gtm_pipeline.store.cursors import Cursor
from gtm_pipeline.store.slices import Slice
from gtm_pipeline.sync.extract import FetchedPage, flatten_records, joined_pages
from gtm_pipeline.sync.load import largest_position

_POLL_SECONDS = 0.05
EXPIRED_LOCATOR = "INVALID_QUERY_LOCATOR"

SliceStart = Cursor | datetime | None
"""Where a slice's read begins: its lower bound (None), a stamp (at or after it), or a position
(strictly after it)."""
SliceQuery = Callable[[SliceStart], str]


@dataclass(frozen=True)
class SlicePage:
    slice: int
    page: FetchedPage
    reached: Cursor | None
    """The page's last record: the furthest position in the slice once the page is stored."""
    last: bool
    """Whether the slice has no more pages."""


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class ReadSlots:
    """The query cursors a run may hold open at once (Salesforce keeps 10 a user and releases
    the oldest beyond that): a slice reading REST pages holds one from its first query to its
    last page, and so does a serial read. Shared by the entities of one run. A serial read
    waiting for a slot gets the next one before any waiting slice (it is one entity's whole
    read, or what ends it: its deleted records), and a slice's wait gives up when told to stop.
    `COUNT()` and `LIMIT 1` queries answer in one page and leave no cursor open; they take none.
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a run needs at least one read slot")
        self.slots = slots
        self._free = slots
        self._serial_waiting = 0
        self._changed = threading.Condition()

    def take(self, stop: threading.Event) -> bool:
        """A slot for a slice, once no serial read waits for one; False when `stop` was set
        first."""
        with self._changed:
            while not stop.is_set():
                if self._free and not self._serial_waiting:
                    self._free -= 1
                    return True
                self._changed.wait(_POLL_SECONDS)
            return False

    def give_back(self) -> None:
        with self._changed:
            self._free += 1
            self._changed.notify_all()

    @contextmanager
    def held(self) -> Iterator[None]:
        """A slot for the block, before any waiting slice: a serial read keeps its cursor open
        in it."""
        with self._changed:
            self._serial_waiting += 1
            while not self._free:
                self._changed.wait()
            self._serial_waiting -= 1
            self._free -= 1
        try:
            yield
        finally:
            self.give_back()


@dataclass(frozen=True)
class _Ended:
    slice: int


def _stamp(text: object) -> datetime:
    return pd.Timestamp(str(text)).tz_convert("UTC").to_pydatetime()


def page_position(frame: pd.DataFrame) -> Cursor | None:
    """The largest `(SystemModstamp, Id)` of a page: its last record's, unless a record was
    served twice out of order, so the largest rather than the last."""
    if frame.empty:
        return None
    return largest_position(pd.to_datetime(frame["SystemModstamp"], utc=True), frame["Id"])


def oldest_stamp(frame: pd.DataFrame) -> datetime:
    """The stamp of a first page's first record: the oldest of the query (cursor order)."""
    return _stamp(frame["SystemModstamp"].iloc[0])


def head_of_first_slice(head: FetchedPage, first: Slice) -> SlicePage:
    """The first page of a serial read (the oldest records, in cursor order) as the first
    slice's first page: its records below the slice's upper bound, and the whole slice when
    the page reaches past that bound."""
    frame = head.frame
    if first.upper is None or frame.empty:
        return SlicePage(first.number, head, page_position(frame), last=False)
    stamps = pd.to_datetime(frame["SystemModstamp"], utc=True)
    inside = frame.loc[stamps < first.upper].reset_index(drop=True)
    reaches_past = bool((stamps >= first.upper).any())
    page = FetchedPage(inside, head.page_number, head.total_size)
    return SlicePage(first.number, page, page_position(inside), last=reaches_past)


def rest_slice_pages(
    client: SalesforceClient,
    number: int,
    query: SliceQuery,
    start: SliceStart,
    *,
    include_deleted: bool,
    batch_size: int,
) -> Iterator[SlicePage]:
    """Slice `number`'s REST pages from `start` on, its query reopened right after the last
    record read when Salesforce no longer knows its cursor. Reopened only after progress, so a
    slice whose cursors keep being taken away before it reads anything fails, not loops."""
    while True:
        expired = yield from _follow(
            client, number, query(start), include_deleted=include_deleted, batch_size=batch_size
        )
        if expired is None:
            return
        if expired.reached is None or expired.reached == start:
            raise expired.error
        start = expired.reached


@dataclass(frozen=True)
class _Expired:
    error: SalesforceApiError
    reached: Cursor | None


def _follow(
    client: SalesforceClient, number: int, soql: str, *, include_deleted: bool, batch_size: int
) -> Generator[SlicePage, None, _Expired | None]:
    """The pages of `soql`; returns how far they reached if the cursor expired on the way."""
    reached: Cursor | None = None
    pages = client.query_pages(soql, include_deleted=include_deleted, batch_size=batch_size)
    try:
        for page in pages:
            frame = flatten_records(page.records)
            reached = page_position(frame) or reached
            fetched = FetchedPage(frame, page.page_number, page.total_size)
            yield SlicePage(number, fetched, reached, page.done)
    except SalesforceApiError as exc:
        if exc.error_code != EXPIRED_LOCATOR:
            raise
        return _Expired(exc, reached)
    finally:
        pages.close()
    return None


@dataclass
class _Handover:
    pages: queue.Queue[object]
    stop: threading.Event
    slots: ReadSlots | None

    def put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.pages.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def drain(self, number: int, source: Callable[[], Iterator[SlicePage]]) -> None:
        if self.slots is None:
            self._drain(number, source)
            return
        if not self.slots.take(self.stop):
            return
        try:
            self._drain(number, source)
        finally:
            self.slots.give_back()

    def _drain(self, number: int, source: Callable[[], Iterator[SlicePage]]) -> None:
        pages = source()
        try:
            for page in pages:
                if not self.put(page):
                    return
            self.put(_Ended(number))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self.put(_Failure(exc))
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()


def read_slices(
    sources: Mapping[int, Callable[[], Iterator[SlicePage]]],
    *,
    depth: int,
    slots: ReadSlots | None = None,
) -> Iterator[SlicePage]:
    """Every page of every slice in `sources` (slice number: what produces its pages), as the
    threads produce them; ends when every slice has handed over its last page. With `slots`,
    each thread reads only while it holds one."""
    handover = _Handover(queue.Queue(maxsize=depth), threading.Event(), slots)
    threads = [
        threading.Thread(target=handover.drain, args=(n, source), name=f"slice-{n}", daemon=True)
        for n, source in sources.items()
    ]
    for thread in threads:
        thread.start()
    unfinished = set(sources)
    try:
        while unfinished:
            item = handover.pages.get()
            if isinstance(item, _Failure):
                raise item.error
            if isinstance(item, _Ended):
                if item.slice in unfinished:  # never waits for a page that cannot come
                    raise RuntimeError(f"slice {item.slice} ended without its last page")
                continue
            item = cast(SlicePage, item)
            if item.last:
                unfinished.discard(item.slice)
            yield item
    finally:
        handover.stop.set()
        for thread in threads:
            thread.join()


@dataclass(frozen=True)
class SliceBatch:
    """Consecutive slice pages joined for one load: their rows (None when every page was
    empty), how far each slice they came from reached, and which slices they finished."""

    page: FetchedPage | None
    pages: int
    reached: dict[int, Cursor]
    finished: frozenset[int]


def batched_slice_pages(items: Iterator[SlicePage], rows: int) -> Iterator[SliceBatch]:
    """Slice pages joined until at least `rows` records. A slice's pages come in its cursor
    order, so once a batch is stored every row of a slice up to its `reached` is stored."""
    pending: list[FetchedPage] = []
    count, reached, finished = 0, {}, set()
    for item in items:
        if not item.page.frame.empty:
            pending.append(item.page)
            count += len(item.page.frame)
        if item.reached is not None:
            reached[item.slice] = item.reached
        if item.last:
            finished.add(item.slice)
        if count >= rows:
            yield SliceBatch(joined_pages(pending), len(pending), reached, frozenset(finished))
            pending, count, reached, finished = [], 0, {}, set()
    if pending or reached or finished:
        page = joined_pages(pending) if pending else None
        yield SliceBatch(page, len(pending), reached, frozenset(finished))
