"""Reading ahead: the next item of an iterator produced in a background thread.

A sync alternates between waiting on Salesforce (the next page, the next Bulk result set) and
working on what it has (gates, load, commit). `read_ahead` overlaps the two: while the caller
works on one batch, a thread fetches the next. At most `depth` items wait in the queue (plus
the one being produced), so memory stays bounded; the thread only reads, never commits, so
the cursor still moves only with the data it covers.

An exception in the producer is raised to the caller at the point its item would have been
taken (earlier items are handed over first). When the caller stops early (an exception of its
own, `close()`), the producer is told to stop, the source iterator is closed in the producer
thread, and the thread is joined before control returns: nothing keeps using the client after
the caller has moved on. Use `reading_ahead` (a context manager) so that close happens when the
caller's block ends, not whenever the garbage collector gets to the generator.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

_POLL_SECONDS = 0.05
_DONE = object()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


def read_ahead(items: Iterator[T], *, depth: int = 1, name: str = "read-ahead") -> Iterator[T]:
    """Yield `items` in order while a thread produces up to `depth` items ahead."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    waiting: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: object) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over(item):
                    return
            hand_over(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            hand_over(_Failure(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    producer = threading.Thread(target=produce, name=name, daemon=True)
    producer.start()
    try:
        while True:
            item = waiting.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        if producer is not threading.current_thread():  # a late close by the collector
            producer.join()


@contextmanager
def reading_ahead(
    items: Iterator[T], *, depth: int = 1, name: str = "read-ahead"
) -> Iterator[Iterator[T]]:
    """`read_ahead(items)` closed when the block ends, however it ends."""
    ahead = read_ahead(items, depth=depth, name=name)
    try:
        yield ahead
    finally:
        ahead.close()
