"""The process's heap while syncs run: the garbage collector kept off its long-lived part, and
glibc's malloc arenas capped.

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

Each process also caps glibc's malloc arenas at `SYNC_MALLOC_ARENAS` (`cap_malloc_arenas`: called
where the code location and the CLI start, and again by the first sync, for programs that sync
without either). A sync runs a dozen threads (slice readers, gates, a loader per entity read at
once) and glibc gives each new thread an arena of its own, up to eight per core: memory one
thread freed stays in its arena, out of reach of the next. Syncing 1,000,000 Contacts with 50,000
other records at once into SQLite peaked at 695 MB with glibc's default and 543 MB with two
arenas, in the same wall time (`benchmarks/results/latency_1000000.md`, the run before in
`HISTORY.md`). glibc fixes its limit once a process has made more than eight arenas, so the cap
is taken early; an operator's own `MALLOC_ARENA_MAX` (or `GLIBC_TUNABLES` arena setting) is left
to rule, and is the way to set it for a process that starts many threads before loading this
package. Other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

M_ARENA_MAX = -8
"""glibc's `mallopt` parameter for the most arenas (`<malloc.h>`)."""
SYNC_MALLOC_ARENAS = 2
_ARENA_TUNABLE = re.compile(r"glibc\.malloc\.arena_max=[1-9]")
log = logging.getLogger(__name__)

_lock = threading.Lock()
_running = 0
_frozen_here = False
_arenas_checked = False


def operator_set_arenas(environ: Mapping[str, str]) -> bool:
    """Whether `environ` (the process's) already told glibc how many arenas to keep (0 or an
    empty value tells glibc nothing)."""
    chosen = environ.get("MALLOC_ARENA_MAX", "").strip()
    return (chosen.isdigit() and int(chosen) > 0) or bool(
        _ARENA_TUNABLE.search(environ.get("GLIBC_TUNABLES", ""))
    )


def cap_malloc_arenas() -> bool:
    """Cap glibc's arenas at `SYNC_MALLOC_ARENAS` once per process (see the module's docstring);
    True when this call capped them. Never raises: a process it cannot cap runs as before."""
    global _arenas_checked
    with _lock:
        if _arenas_checked:
            return False
        _arenas_checked = True
        # glibc reads these variables itself at start-up, as Dagster reads its own (the one
        # read of the environment outside the settings, test_import_contracts.py)
        if operator_set_arenas(os.environ) or not is_glibc():
            return False
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):
            return False
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        capped = mallopt(M_ARENA_MAX, SYNC_MALLOC_ARENAS) == 1
    if capped:
        log.info("malloc arenas capped at %d (MALLOC_ARENA_MAX overrides)", SYNC_MALLOC_ARENAS)
    return capped


def is_glibc() -> bool:
    """Whether this process runs on glibc."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # a platform without os.confstr or that name
        return False


@contextmanager
def long_lived_heap_frozen() -> Iterator[None]:
    """Freeze the heap for the block; syncs running at once (threads) share one freeze. Caps
    malloc's arenas first, if nothing in the process has yet."""
    global _running, _frozen_here
    cap_malloc_arenas()
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
