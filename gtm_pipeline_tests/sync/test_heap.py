"""The long-lived heap is frozen while syncs run and handed back to the collector after."""

from __future__ import annotations

import gc
import platform
import threading

import pytest

from gtm_pipeline.sync.entities import ACCOUNTS
from gtm_pipeline.sync.heap import limit_malloc_arenas, long_lived_heap_frozen
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
def arenas_unchecked(monkeypatch):
    """The process as if no sync had capped malloc's arenas yet; the calls to the cap recorded
    (with the threads alive at each) instead of made."""
    from gtm_pipeline.sync import heap

    calls = []
    monkeypatch.setattr(heap, "_arenas_checked", False)
    monkeypatch.setattr(
        heap, "limit_malloc_arenas", lambda: calls.append([t.name for t in threading.enumerate()])
    )
    return calls


def test_the_first_sync_of_a_process_caps_malloc_arenas_once(arenas_unchecked):
    with long_lived_heap_frozen():
        pass
    with long_lived_heap_frozen():
        pass
    assert len(arenas_unchecked) == 1


def test_entities_read_at_once_cap_the_arenas_before_their_lanes_start(
    arenas_unchecked, client, engine
):
    from gtm_pipeline.sync.entities import PERSONS
    from gtm_pipeline.sync.entities_at_once import EntityOutcome, sync_entities

    events = list(sync_entities(client, engine, "acme", [ACCOUNTS, PERSONS], SyncOptions()))
    assert sum(isinstance(e, EntityOutcome) for e in events) == 2
    assert len(arenas_unchecked) == 1
    assert not [name for name in arenas_unchecked[0] if name.startswith("lane-")]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_malloc_arenas_are_capped_through_glibc_unless_the_operator_chose(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert limit_malloc_arenas() is True
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=4")
    assert limit_malloc_arenas() is False
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert limit_malloc_arenas() is False
