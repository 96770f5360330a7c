"""Parallel full reads: a full REST read split into SystemModstamp slices read at once stores
exactly what a serial read stores, resumes an interrupted run at each slice's committed position,
loses nothing that changes while the slices run, and survives cursors Salesforce takes away,
transient errors on one slice and the API budget running out. Both stores, the emulator over HTTPS,
the oracle in `reconcile.py`.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from gtm_pipeline.salesforce.errors import ApiLimitExceeded
from gtm_pipeline.store.slices import load_plan
from gtm_pipeline.sync.entities import PERSONS, SYNC_ORDER
from gtm_pipeline.sync.runner import PageProgress, SyncOptions, sync_entity
from gtm_pipeline.sync.slices import slice_count
from gtm_pipeline.sync.soql import datetime_literal
from gtm_pipeline_tests.support.sync import COUNTS, client_for
from gtm_pipeline_tests.sync.reconcile import reconcile
from gtm_pipeline_tests.sync.test_bulk_sync import FAST_POLL, cursors, quarantine, stored

TENANT = "acme"
# Slices of at least 100 records, pages of 200 and loads of 300: the test org's objects (120 to
# 900 records) split into 1 to 4 slices of a few pages each, whose batches mix slices.
SLICED = {"parallel_reads": 4, "min_slice_records": 100, "batch_size": 200, "load_batch_rows": 300}
SERIAL = {"parallel_reads": 1, "batch_size": 200}
QUERY_MORE = r"^/services/data/v[0-9.]+/query/"


class Stop(Exception):
    """Raised from a page callback: the run dies after a committed batch."""


def sync_all(client, engine, tenant=TENANT, on_page=None, **options):
    return {
        e.name: sync_entity(client, engine, tenant, e, SyncOptions(**options), on_page=on_page)
        for e in SYNC_ORDER
    }


def plan_of(engine, entity=PERSONS):
    with engine.connect() as conn:
        return load_plan(conn, TENANT, entity.name)


def reconcile_all(engine, emulator, tenant=TENANT):
    for entity in SYNC_ORDER:
        reconcile(engine, tenant, emulator, entity)


def stop_after(batches: int):
    seen: list[PageProgress] = []

    def on_page(progress: PageProgress) -> None:
        if progress.entity == PERSONS.name and progress.kind == "slices":
            seen.append(progress)
            if len(seen) == batches:
                raise Stop

    return on_page


def test_a_sliced_full_sync_stores_exactly_what_a_serial_one_stores(emulator, client, engine):
    sliced = sync_all(client, engine, "sliced", **SLICED)
    serial = sync_all(client, engine, "serial", **SERIAL)
    for entity in SYNC_ORDER:
        expected = slice_count(COUNTS_BY_ENTITY[entity.name], 4, 100)
        # Records sharing one second stay in one slice: a clumped object gets fewer slices.
        assert sliced[entity.name].slices in ((0,) if expected == 1 else range(1, expected + 1))
        assert serial[entity.name].slices == 0
        assert stored(engine, "sliced", entity) == stored(engine, "serial", entity), entity.name
        assert quarantine(engine, "sliced", entity) == quarantine(engine, "serial", entity)
        assert cursors(engine, "sliced", entity) == cursors(engine, "serial", entity)
        assert sliced[entity.name].rows_read == serial[entity.name].rows_read
        reconcile(engine, "sliced", emulator, entity)
        with engine.connect() as conn:
            assert load_plan(conn, "sliced", entity.name) == []
    assert sliced["persons"].slices >= 3


COUNTS_BY_ENTITY = {e.name: COUNTS[e.sf_object] for e in SYNC_ORDER}


def recording_queries(client) -> list[str]:
    """The SOQL of every query the client starts from now on."""
    sent: list[str] = []
    query_pages = client.query_pages

    def recorded(soql, **kwargs):
        sent.append(soql)
        return query_pages(soql, **kwargs)

    client.query_pages = recorded
    return sent


@pytest.mark.parametrize("lookback", [timedelta(0), timedelta(minutes=10)])
def test_an_interrupted_sliced_sync_resumes_each_slice_where_it_stopped(
    emulator, client, engine, lookback
):
    # Batches of at least one 200-record page and under 400 records: two of them cannot hold the
    # 900 Contacts, so the stop always comes before the plan's last batch (with 300-row batches,
    # pages arriving in some orders made two batches of 400 and 500, the second ending the plan).
    options = {**SLICED, "load_batch_rows": 200, "lookback": lookback}
    with pytest.raises(Stop):
        sync_all(client, engine, on_page=stop_after(2), **options)
    plan = plan_of(engine)
    assert len(plan) >= 3 and any(p.cursor for p in plan)
    assert cursors(engine, TENANT, PERSONS) == (None, None)  # no cursor until every slice is read

    sent = recording_queries(client)
    resumed = sync_all(client, engine, **options)["persons"]
    assert resumed.mode == "full" and resumed.slices == len(plan)
    contact_reads = [q for q in sent if "FROM Contact" in q and "COUNT()" not in q]
    for progress in plan:
        upper = progress.slice.upper and datetime_literal(progress.slice.upper)
        read_again = [q for q in contact_reads if _upper_bound(q) == upper and "IsDeleted" not in q]
        if progress.done:
            assert not read_again, "a finished slice is not read again"
            continue
        assert len(read_again) == 1, read_again
        if progress.cursor is None:
            continue
        stamp = progress.cursor.system_modstamp
        if lookback:  # from its committed position minus the lookback
            assert f"SystemModstamp >= {datetime_literal(stamp - lookback)}" in read_again[0]
        else:  # right after its committed position
            assert f"Id > '{progress.cursor.id}'" in read_again[0]
    assert plan_of(engine) == []
    reconcile_all(engine, emulator)


def _upper_bound(soql: str) -> str | None:
    found = re.search(r"SystemModstamp < (\S+)", soql)
    return found.group(1) if found else None


def test_an_interrupted_forced_full_sync_is_finished_by_the_next_run(emulator, client, engine):
    sync_all(client, engine, **SERIAL)
    with pytest.raises(Stop):
        sync_all(client, engine, on_page=stop_after(1), full=True, **SLICED)
    assert plan_of(engine)
    resumed = sync_all(client, engine, **SLICED)["persons"]  # not asked for a full sync
    assert resumed.mode == "full" and plan_of(engine) == []
    reconcile_all(engine, emulator)


def test_records_changed_while_the_slices_run_are_not_lost(emulator, client, engine):
    truth = [r for r in emulator.control.truth("Contact") if not r.get("_dirty")]
    oldest_first = sorted(truth, key=lambda r: r["SystemModstamp"])
    changes = [  # records of the first slices (read first or not yet) edited, one deleted
        *(
            {"op": "update", "object": "Contact", "id": r["Id"], "fields": {"Title": "Changed"}}
            for r in oldest_first[:20:2]
        ),  # fmt: skip
        {"op": "delete", "object": "Contact", "id": oldest_first[1]["Id"]},
        {"op": "insert", "object": "Contact", "fields": {"LastName": "Late", "Email": "late@x.io"}},
    ]
    done = []

    def change_once(progress: PageProgress) -> None:
        if progress.entity == PERSONS.name and not done:
            done.append(emulator.control.mutate(changes))

    sync_all(client, engine, on_page=change_once, **SLICED)
    assert done
    sync_all(client, engine, **SLICED)  # the incremental sync after it
    reconcile_all(engine, emulator)


def test_expired_cursors_are_reopened_where_their_slice_stopped(emulator, client, engine):
    # Two cursors open at most: the slices keep taking each other's away (Salesforce releases
    # the oldest cursor of a user beyond its limit).
    emulator.control.configure(max_open_cursors=2)
    stats = sync_all(client, engine, **SLICED)
    assert stats["persons"].slices >= 3
    reconcile_all(engine, emulator)


def test_transient_errors_on_one_slice_are_retried(emulator, client, engine):
    emulator.control.add_fault(kind="status", status=503, times=3, path=QUERY_MORE)
    sync_all(client, engine, **SLICED)
    assert [f["times"] for f in emulator.control.faults()] in ([], [0])  # every 503 was served
    reconcile_all(engine, emulator)


def test_the_budget_running_out_mid_slice_keeps_what_was_committed(emulator, client, engine):
    spent = []

    def spend_the_budget(progress: PageProgress) -> None:
        if progress.entity == PERSONS.name and progress.kind == "slices" and not spent:
            used = emulator.control.stats()["api_usage"]["used"]
            spent.append(emulator.control.configure(daily_api_limit=used))

    # Pages of 20: far more pages than wait in the slices' queue, so the slices still read
    # when the budget runs out.
    emulator.control.configure(page_size=20)
    with pytest.raises(ApiLimitExceeded, match="REQUEST_LIMIT_EXCEEDED"):
        sync_all(client, engine, on_page=spend_the_budget, **SLICED)
    plan = plan_of(engine)
    assert plan and any(p.cursor for p in plan) and not all(p.done for p in plan)
    emulator.control.configure(reset_usage=True, daily_api_limit=15000)
    resumed = sync_all(client_for(emulator), engine, **SLICED)["persons"]
    assert resumed.mode == "full" and plan_of(engine) == []
    reconcile_all(engine, emulator)


BULK_SLICED = {**SLICED, "bulk_threshold": 0, "bulk_poll": FAST_POLL, "bulk_max_records": 100}


def test_bulk_slices_store_exactly_what_rest_pages_store(emulator, client, engine):
    emulator.control.mutate([{"op": "delete", "object": "Contact", "id": contact_ids(emulator)[0]}])
    bulk = sync_all(client, engine, "bulk", **BULK_SLICED)
    serial = sync_all(client, engine, "serial", **SERIAL)
    assert bulk["persons"].extraction == "bulk" and bulk["persons"].slices >= 3
    assert bulk["persons"].rows_deleted == serial["persons"].rows_deleted == 1
    for entity in SYNC_ORDER:
        assert stored(engine, "bulk", entity) == stored(engine, "serial", entity), entity.name
        assert quarantine(engine, "bulk", entity) == quarantine(engine, "serial", entity)
        assert cursors(engine, "bulk", entity) == cursors(engine, "serial", entity)
        reconcile(engine, "bulk", emulator, entity)


def test_an_interrupted_bulk_slice_is_read_again_in_full_and_finished_ones_are_not(
    emulator, client, engine
):
    with pytest.raises(Stop):
        sync_all(client, engine, on_page=stop_after(2), **BULK_SLICED)
    plan = plan_of(engine)
    assert plan and all(p.extraction == "bulk" for p in plan)
    assert all(p.cursor is None for p in plan if not p.done), "no position before a job's end"
    resumed = sync_all(client, engine, **BULK_SLICED)["persons"]
    assert resumed.mode == "full" and resumed.extraction == "bulk"
    reconcile_all(engine, emulator)


@pytest.mark.parametrize(
    ("setting", "reason"),
    [({"bulk_fail_next": 1}, "Failed"), ({"bulk_enabled": False}, "FEATURENOTENABLED")],
)
def test_a_failing_bulk_slice_leaves_the_rest_of_the_plan_to_rest(
    emulator, client, engine, setting, reason
):
    emulator.control.configure(**setting)
    stats = sync_entity(client, engine, TENANT, PERSONS, SyncOptions(**BULK_SLICED))
    assert reason in (stats.bulk_fallback or "")
    assert stats.extraction == "rest" and stats.slices >= 3
    assert plan_of(engine) == []
    reconcile(engine, TENANT, emulator, PERSONS)


def contact_ids(emulator) -> list[str]:
    return [r["Id"] for r in emulator.control.truth("Contact") if not r.get("_dirty")]


def test_an_incremental_window_of_many_records_is_read_in_slices_a_small_one_serially(
    emulator, client, engine
):
    sync_all(client, engine, **SLICED)
    ids = contact_ids(emulator)
    # 300 changes spread over five minutes (a mass update, a long pause between syncs).
    emulator.control.mutate([
        {"op": "late_commit", "object": "Contact", "id": i, "age_seconds": n,
         "fields": {"Title": f"Wave {n}"}}
        for n, i in enumerate(ids[:300])
    ])  # fmt: skip
    large = sync_all(client, engine, **SLICED)["persons"]
    assert large.mode == "incremental" and large.slices >= 2
    reconcile_all(engine, emulator)
    emulator.control.mutate(
        [
            {"op": "update", "object": "Contact", "id": i, "fields": {"Title": "Small"}}
            for i in ids[:20]
        ]
    )
    # No lookback: the window is these 20 changes, not the 300 of five minutes ago again.
    small = sync_all(client, engine, **SLICED, lookback=timedelta(0))["persons"]
    assert small.mode == "incremental" and small.slices == 0
    assert plan_of(engine) == []
    reconcile_all(engine, emulator)
