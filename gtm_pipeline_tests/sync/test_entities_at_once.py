"""Entities synced at once (`sync/entities_at_once.py`): the store ends exactly as when they sync
one after another, the run never holds more query cursors than its slots, one entity's failure
leaves the others synced and skips what waits for it, and a run stopped early stops each lane at
a committed batch. Both stores, the emulator over HTTPS, the oracle in `reconcile.py`.
"""

from __future__ import annotations

import re
import threading

import pytest

from gtm_pipeline.sync import entities_at_once
from gtm_pipeline.sync.entities import (
    ACTIVITY_ENTITIES,
    ENTITIES,
    OPPORTUNITIES,
    PERSONS,
    SYNC_ORDER,
    FieldMapping,
)
from gtm_pipeline.sync.entities_at_once import EntityOutcome, lanes, sync_entities, waits_for
from gtm_pipeline.sync.mapping import MappingError, save_mappings
from gtm_pipeline.sync.runner import PageProgress, SyncOptions, SyncStats, sync_entity
from gtm_pipeline.sync.slice_reader import ReadSlots
from gtm_pipeline_tests.sync.reconcile import reconcile
from gtm_pipeline_tests.sync.test_bulk_sync import cursors, quarantine, stored
from gtm_pipeline_tests.sync.test_parallel_reads import SLICED

TENANT = "acme"


def outcomes(events) -> dict[str, EntityOutcome]:
    ended = [e for e in events if isinstance(e, EntityOutcome)]
    assert len(ended) == len({e.entity.name for e in ended}), "one outcome an entity"
    return {e.entity.name: e for e in ended}


def test_lanes_keep_one_writer_a_table_and_activities_wait_for_the_scored_entities():
    assert [[e.name for e in lane] for lane in lanes(SYNC_ORDER)] == [
        ["accounts"],
        ["persons", "leads"],
        ["opportunities"],
        ["tasks", "events"],
    ]
    assert all(waits_for(e) == () for e in SYNC_ORDER if e not in ACTIVITY_ENTITIES)
    assert all(OPPORTUNITIES in waits_for(e) for e in ACTIVITY_ENTITIES)


def test_entities_synced_at_once_store_exactly_what_one_after_another_stores(
    emulator, client, engine
):
    options = SyncOptions(full=True, **SLICED)
    events = list(sync_entities(client, engine, "together", SYNC_ORDER, options))
    together = outcomes(events)
    apart = {e.name: sync_entity(client, engine, "apart", e, options) for e in SYNC_ORDER}
    for entity in SYNC_ORDER:
        stats = together[entity.name].stats
        assert stats is not None, together[entity.name]
        assert stats.rows_read == apart[entity.name].rows_read
        assert stored(engine, "together", entity) == stored(engine, "apart", entity), entity.name
        assert quarantine(engine, "together", entity) == quarantine(engine, "apart", entity)
        assert cursors(engine, "together", entity) == cursors(engine, "apart", entity)
        reconcile(engine, "together", emulator, entity)
    assert together["persons"].stats.slices >= 3
    # Each entity counted its own calls: together they are every call of the run.
    calls = sum(o.stats.api_calls for o in together.values())
    assert calls == sum(s.api_calls for s in apart.values())
    pages = [e for e in events if isinstance(e, PageProgress)]
    assert {p.entity for p in pages} == {e.name for e in SYNC_ORDER}


class OpenCursors:
    """The most queries of the client open at once among those `counted` picks (by SOQL):
    from the first page asked for to the last one read, or the read's end."""

    def __init__(self, client, counted) -> None:
        self.most, self._open, self._lock = 0, 0, threading.Lock()
        query_pages = client.query_pages

        def tracked(soql, **kwargs):
            if not counted(soql):
                yield from query_pages(soql, **kwargs)
                return
            self._moved(+1)
            try:
                yield from query_pages(soql, **kwargs)
            finally:
                self._moved(-1)

        client.query_pages = tracked

    def _moved(self, by: int) -> None:
        with self._lock:
            self._open += by
            self.most = max(self.most, self._open)


def in_a_slice(_soql: str) -> bool:
    return re.fullmatch(r"slice-\d+", threading.current_thread().name) is not None


def test_reads_sharing_slots_never_hold_more_slice_cursors_than_the_slots(emulator, client, engine):
    cursors_open = OpenCursors(client, in_a_slice)
    emulator.control.set_latency(call_ms=25)  # pages take long enough for the reads to overlap
    options = SyncOptions(full=True, **{**SLICED, "parallel_reads": 2})
    slots = ReadSlots(2)
    stats = {}

    def read(tenant):
        stats[tenant] = sync_entity(client, engine, tenant, PERSONS, options, read_slots=slots)

    threads = [threading.Thread(target=read, args=(t,)) for t in ("north", "south")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(s.slices >= 3 for s in stats.values())
    assert 1 <= cursors_open.most <= 2
    for tenant in stats:
        reconcile(engine, tenant, emulator, PERSONS)


def test_a_run_never_holds_more_query_cursors_than_its_slots(emulator, client, engine):
    """Every REST read that may leave a cursor open (a serial read, a slice) takes a slot;
    `COUNT()` and `LIMIT 1` queries answer in one page and take none."""
    cursors_open = OpenCursors(client, lambda soql: "COUNT()" not in soql and "LIMIT 1" not in soql)
    emulator.control.set_latency(call_ms=25)  # pages take long enough for the lanes to overlap
    options = SyncOptions(full=True, **{**SLICED, "parallel_reads": 2})
    ended = outcomes(sync_entities(client, engine, TENANT, SYNC_ORDER, options))
    assert all(o.succeeded for o in ended.values())
    assert 1 <= cursors_open.most <= 2
    for entity in SYNC_ORDER:
        reconcile(engine, TENANT, emulator, entity)


def test_every_entity_of_a_run_reads_with_the_same_slots(client, engine, monkeypatch):
    given = {}

    def recorded(client, engine, tenant_id, entity, options, *, on_page, read_slots):
        given[entity.name] = read_slots
        return SyncStats(entity=entity.name, mode="full")

    monkeypatch.setattr(entities_at_once, "sync_entity", recorded)
    options = SyncOptions(parallel_reads=3)
    ended = outcomes(sync_entities(client, engine, TENANT, SYNC_ORDER, options))
    assert all(o.succeeded for o in ended.values())
    assert set(given) == {e.name for e in SYNC_ORDER}
    assert len({id(s) for s in given.values()}) == 1, "one budget for the run"
    assert next(iter(given.values())).slots == 3


def test_a_failed_entity_leaves_the_others_synced_and_skips_what_waits_for_it(
    emulator, client, engine
):
    with engine.begin() as conn:
        save_mappings(conn, TENANT, "opportunities", [FieldMapping("custom_fields.x", "Gone__c")])
    options = SyncOptions(full=True, **SLICED)
    ended = outcomes(sync_entities(client, engine, TENANT, SYNC_ORDER, options))
    assert isinstance(ended["opportunities"].error, MappingError)
    for name in ("accounts", "persons", "leads"):
        assert ended[name].succeeded
        reconcile(engine, TENANT, emulator, ENTITIES[name])
    for activity in ACTIVITY_ENTITIES:
        assert ended[activity.name].skipped == "opportunities did not sync"
        assert cursors(engine, TENANT, activity) == (None, None)


def test_a_run_stopped_early_stops_each_lane_at_a_committed_batch(emulator, client, engine):
    options = SyncOptions(full=True, **{**SLICED, "load_batch_rows": 100})
    events = sync_entities(client, engine, TENANT, SYNC_ORDER, options)
    first = next(e for e in events if isinstance(e, PageProgress))
    events.close()  # returns once every lane has stopped
    assert first.loaded >= 0
    assert not [t for t in threading.enumerate() if t.name.startswith("lane-")]
    # What was committed is whole: the next run carries on and the store ends exact.
    again = outcomes(sync_entities(client, engine, TENANT, SYNC_ORDER, options))
    assert all(o.succeeded for o in again.values())
    for entity in SYNC_ORDER:
        reconcile(engine, TENANT, emulator, entity)


@pytest.mark.parametrize("entities", [[], [OPPORTUNITIES]])
def test_only_the_entities_asked_for_are_synced(emulator, client, engine, entities):
    ended = outcomes(sync_entities(client, engine, TENANT, entities, SyncOptions(full=True)))
    assert set(ended) == {e.name for e in entities}
