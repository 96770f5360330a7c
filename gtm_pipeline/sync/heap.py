"""Keeping CPython's garbage collector off the long-lived heap while a sync runs.

A sync allocates millions of short-lived containers (parsed records, row tuples, frames), and
every so often CPython answers with a full collection, which walks every tracked object in the
process: the imported modules, the Dagster definitions, pandas and SQLAlchemy, about 230,000
objects and 0.1 s a walk on this machine, four or five walks per 200,000 records synced.
`gc.freeze()` moves the objects alive when a sync starts to the permanent generation, so a full
collection walks only what the sync itself made (a REST sync of 205,000 records ~10% faster).
When the last running sync ends, `gc.unfreeze()` hands them back to the collector, so garbage
among them (cycles not yet collected when the sync started) is still collected, only later.

A process that froze a heap of its own before its first sync (a pre-forking server) is left as it
is: nothing is frozen or unfrozen here. One that calls `gc.freeze()` while a sync runs has that
freeze undone with this one when the last sync ends (nothing tells the two apart). A child forked
during a sync starts with no sync running.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_running = 0
_frozen_here = False


@contextmanager
def long_lived_heap_frozen() -> Iterator[None]:
    """Freeze the heap for the block; syncs running at once (threads) share one freeze."""
    global _running, _frozen_here
    with _lock:
        if _running == 0 and gc.get_freeze_count() == 0:
            gc.freeze()
            _frozen_here = True
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0 and _frozen_here:
                gc.unfreeze()
                _frozen_here = False


def _forget_in_child() -> None:
    global _lock, _running, _frozen_here
    _lock, _running, _frozen_here = threading.Lock(), 0, False


os.register_at_fork(after_in_child=_forget_in_child)
