"""Planning a parallel full read: an object split into SystemModstamp ranges of similar size.

A full read of many records is bound by Salesforce's latency, page after page. Split into N
slices `[lower, upper)` of `SystemModstamp` (whole seconds, the first open below, the last open
above), the pages of all slices are fetched at once (`sync/slice_reader.py`).

Why stamps and not Ids: the slices together cover every possible stamp, and a record changed
while they are read gets a new stamp of "now", which lies in the last slice, ahead of where that
slice is reading; so no change is missed, and the store's modstamp-guarded upsert makes a second
read of an older version harmless. The entity's cursor moves, once every slice is read, to the
largest position read, which the last slice holds: the next incremental sync and its lookback
start from there as after a serial read.

How many: a read through REST pages is planned in slices of at least `RECORDS_PER_SLICE`, up to
`SLICES_PER_SLOT` for each query cursor the run may hold open (`parallel_reads`), and its threads
read only while holding a cursor slot (`slice_reader.ReadSlots`): a slice that ends hands its
slot to one that waits, so the slots stay busy to the end instead of idling while the longest of
N even slices finishes, and entities read at once share the slots evenly. A read through Bulk
jobs takes at most `parallel_reads` slices (a job each, run server-side at once).

The plan: a full read first asks how many records it covers (`read_total`, a `COUNT()` query),
then, to be sliced, for their oldest and newest stamps (`end_stamps`, two `LIMIT 1` queries at
once); an incremental read's count page gives its count and oldest stamp, and the newest costs
one call. `4N` windows of equal width between them (at most
`MAX_COUNTS_AT_ONCE`) are counted with `COUNT()` queries sent all at once (they open no cursor
and answer at once), a window holding more than a slice's share is split in four and counted
again (for at most 12 rounds), and the windows are then joined into at most N slices of about
equal counts. Records that share one second cannot be split: a slice holds at least that second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.store.slices import Slice
from gtm_pipeline.sync.soql import count_query, end_query

RECORDS_PER_SLICE = 4_000
"""A slice reads at least two full REST pages: smaller ones would cost more calls than time."""
SLICES_PER_SLOT = 4
"""REST slices planned for each cursor slot: with 8 slots, 32 slices of 100,000 Contacts read
with 3 other entities took ~15% less time than 8 slices (7.8-8.3 s against 9.8 s)."""
WINDOWS_PER_SLICE = 4
MAX_COUNTS_AT_ONCE = 40
"""`COUNT()` windows sent at once: 4 a slice for 10 slices, 40 round trips of a planning round
in one."""
REFINE_PARTS = 4
REFINE_ROUNDS = 12
"""4^12: a window of two years narrows to seconds. Quarters, not more parts a round: the usual
heavy window is a little over a share and one round of four splits it (16 parts a round made
planning the 150,000-record org's Contacts slower, and fewer rounds left them unbalanced)."""
SECOND = timedelta(seconds=1)


def slice_count(
    total: int, parallel_reads: int, min_records: int = RECORDS_PER_SLICE, *, bulk: bool = False
) -> int:
    """How many slices a read of `total` records takes: 1 (serial) below two slices' worth or
    with one read at a time, else at most `parallel_reads` Bulk jobs or `SLICES_PER_SLOT` times
    as many REST slices."""
    if parallel_reads == 1:
        return 1
    most = parallel_reads if bulk else parallel_reads * SLICES_PER_SLOT
    return max(1, min(most, total // min_records))


@dataclass(frozen=True)
class _Window:
    lower: datetime
    upper: datetime
    count: int = 0


@dataclass(frozen=True)
class _Counter:
    client: SalesforceClient
    sf_object: str
    with_archived: bool
    workers: int

    def counted(self, windows: Sequence[_Window]) -> list[_Window]:
        """`windows` with their record counts, the `COUNT()` queries sent `workers` at once."""
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="slice-count") as pool:
            counts = list(pool.map(self._count, windows))
        return [_Window(w.lower, w.upper, n) for w, n in zip(windows, counts, strict=True)]

    def _count(self, window: _Window) -> int:
        return _count(self.client, self.sf_object, self.with_archived, window.lower, window.upper)


def _count(
    client: SalesforceClient,
    sf_object: str,
    with_archived: bool,
    lower: datetime | None = None,
    upper: datetime | None = None,
) -> int:
    """Live records with a stamp in `[lower, upper)` (no bound when None): a `COUNT()` query."""
    soql = count_query(sf_object, lower, upper, with_archived=with_archived)
    return next(client.query_pages(soql, include_deleted=with_archived)).total_size


def read_total(client: SalesforceClient, sf_object: str, with_archived: bool) -> int:
    """How many live records a full read of `sf_object` returns: one `COUNT()` query."""
    return _count(client, sf_object, with_archived)


def end_stamps(
    client: SalesforceClient, sf_object: str, with_archived: bool
) -> tuple[datetime | None, datetime | None]:
    """The oldest and newest stamps of the live records (None when there are none), both asked
    at once."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="slice-ends") as pool:
        oldest, newest = pool.map(
            lambda newest_first: _end_stamp(client, sf_object, with_archived, newest_first),
            (False, True),
        )
    return oldest, newest


def plan_slices(
    client: SalesforceClient,
    sf_object: str,
    *,
    oldest: datetime,
    slices: int,
    with_archived: bool = False,
    since: datetime | None = None,
    newest: datetime | None = None,
) -> list[Slice]:
    """At most `slices` slices covering every stamp (from `since` on, for an incremental read),
    of about equal record counts. `newest` is asked for when not given."""
    if newest is None:
        newest = _end_stamp(client, sf_object, with_archived, newest_first=True)
    if slices < 2 or newest is None:
        return [Slice(0, since, None)]
    first_round = min(slices * WINDOWS_PER_SLICE, MAX_COUNTS_AT_ONCE)
    counter = _Counter(client, sf_object, with_archived, workers=first_round)
    lower = _whole_second(min(oldest, newest))
    windows = counter.counted(_split(lower, _whole_second(newest) + SECOND, first_round))
    windows = _refined(counter, windows, share=sum(w.count for w in windows) / slices)
    return _joined(windows, slices, since)


def _end_stamp(
    client: SalesforceClient, sf_object: str, with_archived: bool, newest_first: bool
) -> datetime | None:
    soql = end_query(sf_object, with_archived=with_archived, newest=newest_first)
    page = next(client.query_pages(soql, include_deleted=with_archived))
    if not page.records:
        return None
    return pd.Timestamp(page.records[0]["SystemModstamp"]).tz_convert("UTC").to_pydatetime()


def _whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _split(lower: datetime, upper: datetime, parts: int) -> list[_Window]:
    """`[lower, upper)` in at most `parts` windows of equal whole seconds."""
    seconds = int((upper - lower).total_seconds())
    step = max(1, math.ceil(seconds / parts))
    bounds = [lower + timedelta(seconds=s) for s in range(0, seconds, step)] + [upper]
    return [_Window(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


def _refined(counter: _Counter, windows: list[_Window], share: float) -> list[_Window]:
    """Windows holding more than a slice's `share` split in `REFINE_PARTS` and counted again,
    round after round (at most `REFINE_ROUNDS`), until none is heavier or a second wide: a
    burst of recent changes among years of old records is found too. Each round costs one
    round trip and `REFINE_PARTS` counts a heavy window."""
    for _ in range(REFINE_ROUNDS):
        heavy = [w for w in windows if w.count > share and w.upper - w.lower > SECOND]
        if not heavy:
            break
        parts = counter.counted([p for w in heavy for p in _split(w.lower, w.upper, REFINE_PARTS)])
        windows = sorted([w for w in windows if w not in heavy] + parts, key=lambda w: w.lower)
    return windows


def _joined(windows: Sequence[_Window], slices: int, since: datetime | None = None) -> list[Slice]:
    """Consecutive windows joined into at most `slices` slices of about equal counts; the first
    slice starts at `since` (None: open below) and the last is open above, so together they
    cover every stamp from `since` on."""
    total = sum(w.count for w in windows)
    bounds: list[datetime] = []
    running, next_share = 0, 1
    for window in windows[:-1]:
        running += window.count
        if next_share < slices and running * slices >= next_share * total > 0:
            bounds.append(window.upper)
            next_share = running * slices // total + 1
    edges: list[datetime | None] = [since, *bounds, None]
    return [Slice(n, a, b) for n, (a, b) in enumerate(zip(edges, edges[1:], strict=False))]
