"""The long-lived heap is frozen while syncs run and handed back to the collector after."""

from __future__ import annotations

import gc
import os
import threading

import pytest

from gtm_pipeline.sync.entities import ACCOUNTS
from gtm_pipeline.sync.heap import (
    SYNC_MALLOC_ARENAS,
    is_glibc,
    long_lived_heap_frozen,
    operator_set_arenas,
)
from gtm_pipeline.sync.runner import SyncOptions, sync_entity


@pytest.fixture(autouse=True)
def unfrozen_process():
    gc.unfreeze()
    yield
    gc.unfreeze()


def _tracked(obj: object) -> bool:
    """Whether the collector's generations (not the permanent one) hold `obj`."""
    return any(o is obj for o in gc.get_objects())


def test_the_heap_is_frozen_inside_the_block_and_handed_back_after():
    kept = [object()]  # a list is always tracked by the collector
    with long_lived_heap_frozen():
        assert gc.get_freeze_count() > 0
        assert not _tracked(kept)  # the permanent generation is not walked
    assert gc.get_freeze_count() == 0
    assert _tracked(kept)


def test_overlapping_syncs_share_one_freeze_until_the_last_ends():
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with long_lived_heap_frozen():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(5)
    with long_lived_heap_frozen():
        second_in.set()
        first_out.wait(5)
        seen["after_first_left"] = gc.get_freeze_count()
    thread.join(5)
    assert seen["after_first_left"] > 0
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_by_the_process_itself_stays_frozen():
    gc.freeze()
    before = gc.get_freeze_count()
    with long_lived_heap_frozen():
        pass
    # Not unfrozen (which empties it); frozen objects other threads freed meanwhile may have
    # left the permanent generation, so the count is not compared with `before`.
    assert before > 0 and gc.get_freeze_count() > 0


def test_a_child_forked_during_a_sync_starts_with_none_running():
    import os

    with long_lived_heap_frozen():
        child = os.fork()
        if child == 0:  # the child: a sync of its own freezes and unfreezes by itself
            gc.unfreeze()
            with long_lived_heap_frozen():
                frozen = gc.get_freeze_count() > 0
            os._exit(0 if frozen and gc.get_freeze_count() == 0 else 1)
        _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_an_error_inside_the_block_still_unfreezes():
    with pytest.raises(RuntimeError), long_lived_heap_frozen():
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0


def test_a_sync_runs_with_the_heap_frozen_and_unfreezes_it(client, engine):
    counts = []
    sync_entity(
        client,
        engine,
        "acme",
        ACCOUNTS,
        SyncOptions(batch_size=200, load_batch_rows=200),
        on_page=lambda _: counts.append(gc.get_freeze_count()),
    )
    assert counts and all(count > 0 for count in counts)
    assert gc.get_freeze_count() == 0


@pytest.fixture
def cap_recorded(monkeypatch):
    """The calls to the arena cap recorded (with the threads alive at each) instead of made."""
    from gtm_pipeline.sync import heap

    calls = []
    monkeypatch.setattr(
        heap, "cap_malloc_arenas", lambda: calls.append([t.name for t in threading.enumerate()])
    )
    return calls


def test_entities_read_at_once_cap_the_arenas_before_their_lanes_start(
    cap_recorded, client, engine
):
    from gtm_pipeline.sync.entities import PERSONS
    from gtm_pipeline.sync.entities_at_once import EntityOutcome, sync_entities

    events = list(sync_entities(client, engine, "acme", [ACCOUNTS, PERSONS], SyncOptions()))
    assert sum(isinstance(e, EntityOutcome) for e in events) == 2
    assert cap_recorded, "the run capped nothing"
    assert not [name for name in cap_recorded[0] if name.startswith("lane-")]


@pytest.mark.parametrize(
    ("environ", "chosen"),
    [
        ({}, False),
        ({"MALLOC_ARENA_MAX": "8"}, True),
        ({"MALLOC_ARENA_MAX": "0"}, False),  # glibc's default
        ({"MALLOC_ARENA_MAX": ""}, False),
        ({"GLIBC_TUNABLES": "glibc.malloc.check=0:glibc.malloc.arena_max=4"}, True),
        ({"GLIBC_TUNABLES": "glibc.malloc.arena_test=4"}, False),
    ],
)
def test_an_operators_arena_setting_is_recognised(environ, chosen):
    assert operator_set_arenas(environ) is chosen


# Starts threads that allocate at once (each new thread gets an arena of its own, up to 8 a
# core) and counts the arenas glibc reports, with or without the cap taken first.
ARENAS_COUNTED = """
import ctypes, sys, tempfile, threading
from gtm_pipeline.sync.heap import cap_malloc_arenas
if sys.argv[1] == "capped":
    assert cap_malloc_arenas() and not cap_malloc_arenas()  # once a process
together = threading.Barrier(9)
def allocate():
    held = [bytearray(100_000) for _ in range(20)]
    together.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads: t.start()
together.wait()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = libc.fclose.argtypes = None
with tempfile.NamedTemporaryFile("r") as report:
    stream = ctypes.c_void_p(libc.fopen(report.name.encode(), b"w"))
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(report.read().count("<heap nr="))
"""


@pytest.mark.skipif(not is_glibc(), reason="glibc's arenas only")
def test_a_capped_process_makes_no_more_than_two_arenas_for_its_threads():
    import subprocess
    import sys

    chosen = ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")
    environ = {k: v for k, v in os.environ.items() if k not in chosen}
    arenas = {
        kind: int(
            subprocess.run(  # noqa: S603 - this interpreter, fixed code
                [sys.executable, "-c", ARENAS_COUNTED, kind],
                env=environ, capture_output=True, text=True, check=True, timeout=60,
            ).stdout
        )
        for kind in ("capped", "default")
    }  # fmt: skip
    assert arenas["capped"] <= SYNC_MALLOC_ARENAS < arenas["default"]
