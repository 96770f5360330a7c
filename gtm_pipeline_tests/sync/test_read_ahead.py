"""`read_ahead`: order, bounded look-ahead, errors handed over, clean stop when the caller quits."""

from __future__ import annotations

import threading
import time

import pytest

from gtm_pipeline.sync.read_ahead import read_ahead, reading_ahead


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_every_item_in_order_and_the_thread_is_gone() -> None:
    assert list(read_ahead(iter(range(1000)), name="t-order")) == list(range(1000))
    assert _threads("t-order") == []


def test_the_producer_runs_at_most_depth_plus_one_ahead() -> None:
    produced: list[int] = []

    def source():
        for n in range(50):
            produced.append(n)
            yield n

    items = read_ahead(source(), depth=2, name="t-bound")
    taken = [next(items) for _ in range(3)]
    deadline = time.monotonic() + 10
    while len(produced) < 6 and time.monotonic() < deadline:  # a loaded machine is slow
        time.sleep(0.01)
    time.sleep(0.2)  # it would go on here if it were not bounded
    assert taken == [0, 1, 2]
    # taken 3, two waiting in the queue, one produced and blocked on the full queue
    assert len(produced) == 3 + 2 + 1
    items.close()
    assert _threads("t-bound") == []


def test_an_error_comes_after_the_items_before_it() -> None:
    def source():
        yield 1
        yield 2
        raise ConnectionError("page 3 failed")

    got = []
    with pytest.raises(ConnectionError, match="page 3 failed"):
        for item in read_ahead(source(), name="t-error"):
            got.append(item)
    assert got == [1, 2]
    assert _threads("t-error") == []


def test_a_caller_that_stops_early_stops_and_closes_the_source() -> None:
    closed = threading.Event()
    produced: list[int] = []

    def source():
        try:
            for n in range(10_000):
                produced.append(n)
                yield n
        finally:
            closed.set()

    with pytest.raises(RuntimeError, match="load failed"):
        for item in read_ahead(source(), name="t-stop"):
            if item == 5:
                raise RuntimeError("load failed")
    assert closed.is_set(), "the source's clean-up ran"
    assert _threads("t-stop") == []
    assert len(produced) <= 5 + 1 + 2, "nothing read beyond the bound"


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        next(read_ahead(iter([1]), depth=0))


def test_a_two_stage_pipeline_is_shut_down_when_the_block_ends() -> None:
    """As the sync uses it: fetch in one thread, work in another, load in the caller's. A failure
    of the caller stops both threads before the block is left, not when the collector runs."""
    closed = threading.Event()

    def pages():
        try:
            yield from range(10_000)
        finally:
            closed.set()

    def doubled(items):
        for item in items:
            yield item * 2

    taken = []

    def load() -> None:
        with (
            reading_ahead(pages(), name="t-fetch") as fetched,
            reading_ahead(doubled(fetched), name="t-work") as ready,
        ):
            for item in ready:
                taken.append(item)
                if len(taken) == 3:
                    raise RuntimeError("commit failed")

    with pytest.raises(RuntimeError, match="commit failed"):
        load()
    assert taken == [0, 2, 4]
    assert closed.is_set()
    assert _threads("t-fetch") == [] and _threads("t-work") == []
