"""Slice planning and batching, without Salesforce: windows joined into slices of about equal
counts that cover every stamp, and slice pages batched so each slice's progress is exact."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gtm_pipeline.store.cursors import Cursor
from gtm_pipeline.store.slices import Slice
from gtm_pipeline.sync.extract import FetchedPage
from gtm_pipeline.sync.slice_reader import (
    ReadSlots,
    SlicePage,
    batched_slice_pages,
    page_position,
    read_slices,
)
from gtm_pipeline.sync.slices import SLICES_PER_SLOT, _joined, _split, _Window, slice_count

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_slice_count_follows_the_record_count_up_to_the_cursor_slots():
    assert slice_count(3_999, 8) == 1
    assert slice_count(8_000, 8) == 2
    assert slice_count(1_000_000, 8) == 8 * SLICES_PER_SLOT  # REST: several slices a slot
    assert slice_count(1_000_000, 8, bulk=True) == 8  # Bulk: a job a slot
    assert slice_count(8_000, 8, bulk=True) == 2
    assert slice_count(900, 4, min_records=100) == 9
    assert slice_count(1_000_000, 1) == 1  # one read at a time: serial


def test_split_gives_whole_second_windows_that_tile_the_range():
    windows = _split(at(0), at(10), 4)
    assert [(w.lower, w.upper) for w in windows] == [
        (at(0), at(3)), (at(3), at(6)), (at(6), at(9)), (at(9), at(10)),
    ]  # fmt: skip
    assert [(w.lower, w.upper) for w in _split(at(0), at(2), 8)] == [(at(0), at(1)), (at(1), at(2))]


@given(st.lists(st.integers(0, 1_000), min_size=1, max_size=40), st.integers(2, 10))
def test_joined_slices_cover_every_stamp_in_order(counts, slices):
    windows = [_Window(at(i), at(i + 1), n) for i, n in enumerate(counts)]
    planned = _joined(windows, slices)
    assert 1 <= len(planned) <= slices
    assert planned[0].lower is None and planned[-1].upper is None
    assert [p.number for p in planned] == list(range(len(planned)))
    for before, after in zip(planned, planned[1:], strict=False):
        assert before.upper == after.lower is not None


def test_joined_slices_hold_about_equal_counts():
    windows = [_Window(at(i), at(i + 1), 100) for i in range(16)]
    planned = _joined(windows, 4)
    assert [(p.lower, p.upper) for p in planned] == [
        (None, at(4)), (at(4), at(8)), (at(8), at(12)), (at(12), None),
    ]  # fmt: skip
    # One heavy window: the slices around it shrink to it instead of doubling up.
    heavy = [_Window(at(i), at(i + 1), 1_000 if i == 5 else 10) for i in range(16)]
    bounds = [p.upper for p in _joined(heavy, 4)[:-1]]
    assert at(6) in bounds and len(bounds) == len(set(bounds))


def test_a_slice_needs_a_lower_bound_below_its_upper_one():
    with pytest.raises(ValueError, match="empty"):
        Slice(1, at(5), at(5))


def page(slice_number, ids, stamps, last=False):
    frame = pd.DataFrame(
        {"Id": ids, "SystemModstamp": [f"{at(s):%Y-%m-%dT%H:%M:%S}.000+0000" for s in stamps]}
    )
    return SlicePage(slice_number, FetchedPage(frame, 1, 0), page_position(frame), last)


def test_batches_carry_each_slices_furthest_position_and_finished_slices():
    items = [
        page(0, ["a1", "a2"], [1, 2]),
        page(1, ["b1"], [10]),
        page(1, [], [], last=True),
        page(0, ["a3", "a4"], [3, 3]),
        page(0, ["a5"], [4], last=True),
    ]
    batches = list(batched_slice_pages(iter(items), rows=3))
    assert [len(b.page.frame) for b in batches] == [3, 3]
    first, second = batches
    assert first.reached == {0: Cursor(at(2), "a2"), 1: Cursor(at(10), "b1")}
    assert first.finished == frozenset()
    assert second.reached == {0: Cursor(at(4), "a5")}
    assert second.finished == frozenset({0, 1})


def test_a_batch_of_empty_pages_still_finishes_its_slices():
    batches = list(batched_slice_pages(iter([page(2, [], [], last=True)]), rows=3))
    assert len(batches) == 1
    assert batches[0].page is None and batches[0].finished == frozenset({2})


def test_read_slices_hands_over_every_slices_pages_in_each_slices_order():
    sources = {
        n: (lambda n=n: iter([page(n, [f"{n}a"], [n]), page(n, [f"{n}b"], [n + 1], last=True)]))
        for n in range(3)
    }
    got = list(read_slices(sources, depth=1))
    assert len(got) == 6
    for n in range(3):
        assert [p.page.frame["Id"].iloc[0] for p in got if p.slice == n] == [f"{n}a", f"{n}b"]


def test_an_error_in_one_slice_stops_every_thread_and_is_raised():
    stopped = []

    def endless(n):
        try:
            while True:
                yield page(n, [f"{n}"], [1])
        finally:
            stopped.append(n)

    def failing():
        yield page(2, ["x"], [1])
        raise ConnectionError("slice 2 lost its connection")

    sources = {0: lambda: endless(0), 1: lambda: endless(1), 2: failing}
    with pytest.raises(ConnectionError, match="slice 2"):
        for _ in read_slices(sources, depth=2):
            pass
    assert sorted(stopped) == [0, 1], "the other slices' sources were closed before the raise"


def test_a_source_that_ends_without_its_last_page_is_an_error_not_a_hang():
    with pytest.raises(RuntimeError, match="slice 0 ended without its last page"):
        list(read_slices({0: lambda: iter([page(0, ["a"], [1])])}, depth=1))


def test_slices_read_only_while_holding_one_of_the_slots():
    active, most, lock = [0], [0], threading.Lock()

    def source(n):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            yield page(n, [f"{n}a"], [n])
            yield page(n, [f"{n}b"], [n + 1], last=True)
        finally:
            with lock:
                active[0] -= 1

    sources = {n: (lambda n=n: source(n)) for n in range(6)}
    got = list(read_slices(sources, depth=1, slots=ReadSlots(2)))
    assert sorted(p.page.frame["Id"].iloc[0] for p in got) == sorted(
        f"{n}{x}" for n in range(6) for x in "ab"
    )
    assert most[0] <= 2


def test_slices_waiting_for_a_slot_give_up_when_the_reader_stops():
    def endless(n):
        while True:
            yield page(n, [f"{n}"], [1])

    sources = {n: (lambda n=n: endless(n)) for n in range(4)}
    slots = ReadSlots(1)
    reader = read_slices(sources, depth=1, slots=slots)
    next(reader)
    reader.close()  # joins every thread: the three waiting for the slot gave up
    assert slots.take(threading.Event()), "the slot was given back"


def test_a_run_needs_a_read_slot():
    with pytest.raises(ValueError, match="at least one read slot"):
        ReadSlots(0)


def test_a_serial_read_gets_the_next_free_slot_before_waiting_slices():
    slots, order, stop = ReadSlots(1), [], threading.Event()
    assert slots.take(stop)  # a slice reads

    def slice_waits(n):
        if slots.take(stop):
            order.append(f"slice {n}")
            slots.give_back()

    def serial_waits():
        with slots.held():
            order.append("serial")

    waiting = [threading.Thread(target=slice_waits, args=(n,)) for n in range(3)]
    waiting.append(threading.Thread(target=serial_waits))
    for thread in waiting:
        thread.start()
    while slots._serial_waiting == 0:  # the serial read is queued (the slices may be too)
        threading.Event().wait(0.001)
    slots.give_back()
    for thread in waiting:
        thread.join()
    assert order[0] == "serial" and sorted(order[1:]) == ["slice 0", "slice 1", "slice 2"]
