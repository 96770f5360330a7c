"""Full syncs through Bulk API 2.0 against the emulator: same tables as REST, cursors, fallbacks."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from gtm_pipeline.config import ConfigError, bulk_threshold
from gtm_pipeline.salesforce.bulk_jobs import BulkPollPolicy, BulkQuery
from gtm_pipeline.salesforce.errors import BulkJobFailed, BulkUnavailable
from gtm_pipeline.store import get_cursor
from gtm_pipeline.store.quarantine import failures_for
from gtm_pipeline.store.tables import entity_rows
from gtm_pipeline.sync.bulk_csv import read_csv_text
from gtm_pipeline.sync.entities import PERSONS, SYNC_ORDER, FieldMapping
from gtm_pipeline.sync.load import deleted_cursor_key
from gtm_pipeline.sync.runner import PageProgress, SyncOptions, sync_entity
from gtm_pipeline_tests.sync.reconcile import reconcile

FAST_POLL = BulkPollPolicy(initial_seconds=0.0, max_interval_seconds=0.01, timeout_seconds=30)
REST = {"bulk_threshold": 10**9}
BULK = {"bulk_threshold": 0, "bulk_poll": FAST_POLL}
# Persons also carry a compound address, a relationship path and typed custom fields, so the
# comparison covers what CSV has to be converted for.
PERSON_MAPPINGS = (
    *PERSONS.mappings,
    FieldMapping("custom_fields.mailing", "MailingAddress"),
    FieldMapping("custom_fields.industry", "Account.Industry"),
    FieldMapping("custom_fields.fit", "Fit_Score__c"),
    FieldMapping("custom_fields.scored_at", "Scored_At__c"),
    FieldMapping("custom_fields.region", "Region__c"),
)


def mappings_for(entity):
    return PERSON_MAPPINGS if entity is PERSONS else None


def sync_all(client, engine, tenant, **options):
    return {
        e.name: sync_entity(
            client, engine, tenant, e, SyncOptions(**options), mappings=mappings_for(e)
        )
        for e in SYNC_ORDER
    }


def stored(engine, tenant, entity) -> dict[str, dict]:
    owned = entity_rows(entity.name)
    skip = {"tenant_id", "synced_at"}
    with engine.connect() as conn:
        rows = conn.execute(sa.select(owned.table).where(owned.of_tenant(tenant))).mappings()
        return {r["external_id"]: {k: v for k, v in r.items() if k not in skip} for r in rows}


def quarantine(engine, tenant, entity) -> set[tuple]:
    with engine.connect() as conn:
        return {
            (f["external_id"], f["stage"], f["field"], f["reason"])
            for f in failures_for(conn, tenant, entity.name)
        }


def cursors(engine, tenant, entity):
    with engine.connect() as conn:
        return (
            get_cursor(conn, tenant, entity.name),
            get_cursor(conn, tenant, deleted_cursor_key(entity)),
        )


def delete_some(emulator, sobject: str, count: int) -> list[str]:
    ids = [r["Id"] for r in emulator.control.truth(sobject) if not r.get("_dirty")][:count]
    emulator.control.mutate([{"op": "delete", "object": sobject, "id": i} for i in ids])
    return ids


def test_bulk_and_rest_full_syncs_store_the_same_tables(emulator, client, engine):
    deleted = delete_some(emulator, "Contact", 5)
    rest = sync_all(client, engine, "rest", **REST)
    bulk = sync_all(client, engine, "bulk", **BULK)  # one result set, like REST's one page
    for entity in SYNC_ORDER:
        assert rest[entity.name].extraction == "rest"
        assert bulk[entity.name].extraction == "bulk"
        assert bulk[entity.name].bulk_fallback is None
        by_rest, by_bulk = stored(engine, "rest", entity), stored(engine, "bulk", entity)
        assert by_rest.keys() == by_bulk.keys()
        for external_id, row in by_rest.items():
            assert by_bulk[external_id] == row, external_id
        assert quarantine(engine, "bulk", entity) == quarantine(engine, "rest", entity)
        assert cursors(engine, "bulk", entity) == cursors(engine, "rest", entity)
        for name in ("rows_read", "rows_loaded", "rows_rejected", "rows_deleted"):
            assert getattr(bulk[entity.name], name) == getattr(rest[entity.name], name), name
        reconcile(engine, "bulk", emulator, entity, custom_fields=False)  # own mapping
    assert quarantine(engine, "bulk", PERSONS), "the org's dirty records reached no gate"
    persons = stored(engine, "bulk", PERSONS)
    assert all(persons[i]["is_deleted"] and persons[i]["deleted_at"] for i in deleted)
    # Rows of records deleted before any sync saw them live hold no values (custom_fields NULL).
    customs = [p["custom_fields"] for p in persons.values() if p["custom_fields"]]
    mailing = [c["mailing_city"] for c in customs]
    assert any(mailing), "address components did not reach the compound's columns"
    assert any(isinstance(c["fit"], float) for c in customs)


def test_several_result_sets_commit_the_cursor_with_the_last(emulator, client, engine):
    delete_some(emulator, "Contact", 3)
    emulator.control.reset_stats()
    seen: list[PageProgress] = []
    stats = sync_entity(
        client,
        engine,
        "t",
        PERSONS,
        SyncOptions(**BULK, bulk_max_records=100),
        on_page=seen.append,
    )
    assert stats.extraction == "bulk" and len(seen) >= 9
    assert emulator.control.stats()["calls"]["query"] == 1, "a COUNT(), no REST page read"
    assert {p.kind for p in seen} == {"bulk"}
    assert [p.cursor is None for p in seen] == [True] * (len(seen) - 1) + [False]
    reconcile(engine, "t", emulator, PERSONS)
    live, gone = cursors(engine, "t", PERSONS)
    rows = stored(engine, "t", PERSONS).values()
    assert (live.system_modstamp, live.id) == max(
        (r["system_modstamp"], r["external_id"]) for r in rows if not r["is_deleted"]
    )
    assert gone is not None and stats.rows_deleted == 3


def test_incremental_after_a_bulk_full_sync_stays_on_rest(emulator, client, engine):
    sync_entity(client, engine, "t", PERSONS, SyncOptions(**BULK))
    target = next(r["Id"] for r in emulator.control.truth("Contact") if not r.get("_dirty"))
    emulator.control.mutate(
        {"op": "update", "object": "Contact", "id": target, "fields": {"Title": "CRO"}}
    )
    emulator.control.reset_stats()
    stats = sync_entity(client, engine, "t", PERSONS, SyncOptions(**BULK))
    assert stats.mode == "incremental" and stats.extraction == "rest"
    assert emulator.control.stats()["calls"].get("bulk_create", 0) == 0
    assert stored(engine, "t", PERSONS)[target]["title"] == "CRO"
    reconcile(engine, "t", emulator, PERSONS)


@pytest.mark.parametrize(
    ("setting", "reason"),
    [({"bulk_fail_next": 1}, "Failed"), ({"bulk_enabled": False}, "FEATURENOTENABLED")],
)
def test_failed_job_or_no_bulk_access_falls_back_to_rest(emulator, client, engine, setting, reason):
    emulator.control.configure(**setting)
    stats = sync_entity(client, engine, "t", PERSONS, SyncOptions(**BULK))
    assert stats.extraction == "rest"
    assert reason in (stats.bulk_fallback or "")
    assert emulator.control.stats()["calls"]["bulk_create"] == 1
    reconcile(engine, "t", emulator, PERSONS)
    assert cursors(engine, "t", PERSONS)[0] is not None


def test_a_job_that_never_finishes_is_aborted_then_rest_reads(emulator, client, engine):
    emulator.control.configure(bulk_job_polls=10**6, bulk_job_seconds=10**6)
    patience = BulkPollPolicy(initial_seconds=0.01, max_interval_seconds=0.02, timeout_seconds=0.2)
    options = SyncOptions(bulk_threshold=0, bulk_poll=patience)
    stats = sync_entity(client, engine, "t", PERSONS, options)
    assert "TimedOut" in (stats.bulk_fallback or "") and stats.extraction == "rest"
    reconcile(engine, "t", emulator, PERSONS)


def test_interrupted_bulk_read_keeps_no_cursor_and_reruns_in_full(emulator, client, engine):
    def crash_after_first(progress: PageProgress) -> None:
        raise RuntimeError("killed after the first result set")

    options = SyncOptions(**BULK, bulk_max_records=100)
    with pytest.raises(RuntimeError):
        sync_entity(client, engine, "t", PERSONS, options, on_page=crash_after_first)
    assert stored(engine, "t", PERSONS), "the first result set was committed"
    assert cursors(engine, "t", PERSONS) == (None, None)
    stats = sync_entity(client, engine, "t", PERSONS, options)
    assert stats.mode == "full"
    reconcile(engine, "t", emulator, PERSONS)


def test_below_the_threshold_a_full_sync_uses_rest_without_extra_calls(emulator, client, engine):
    emulator.control.reset_stats()
    stats = sync_entity(client, engine, "t", PERSONS, SyncOptions(bulk_threshold=10**6))
    calls = emulator.control.stats()["calls"]
    assert stats.extraction == "rest" and calls.get("bulk_create", 0) == 0
    # One COUNT() query, then the pages (900 Contacts: one page of 2,000); none read twice.
    assert calls["query"] == 2 and stats.pages == 1


def test_client_bulk_query_pages_and_errors(emulator, client):
    bulk = BulkQuery(client, FAST_POLL)
    sets = list(bulk.run("SELECT Id, Email FROM Contact", max_records=250))
    assert [s.number for s in sets] == list(range(1, len(sets) + 1)) and sets[-1].last
    frames = [read_csv_text(s.csv) for s in sets]
    assert sum(len(f) for f in frames) == sum(s.records for s in sets) >= 900
    with pytest.raises(BulkUnavailable, match="compound"):
        bulk.create("SELECT Id, MailingAddress FROM Contact")
    emulator.control.configure(bulk_fail_next=1)
    job = bulk.create("SELECT Id FROM Contact")
    with pytest.raises(BulkJobFailed, match="Failed"):
        bulk.wait(job.id)


def test_bulk_threshold_from_the_environment():
    assert bulk_threshold({}) == 200_000
    assert bulk_threshold({"GTM_BULK_THRESHOLD": " 0 "}) == 0
    with pytest.raises(ConfigError, match="GTM_BULK_THRESHOLD"):
        bulk_threshold({"GTM_BULK_THRESHOLD": "-5"})
    with pytest.raises(ValueError, match="bulk_threshold"):
        SyncOptions(bulk_threshold=-1)


def test_csv_reading_keeps_text_and_nulls_apart():
    frame = read_csv_text(b'"Id","Zip","Note"\n"a","007",""\n"b","N/A","x\ny"\n')
    assert frame["Zip"].tolist() == ["007", "N/A"]
    assert frame["Note"].isna().tolist() == [True, False]
    assert frame.loc[1, "Note"] == "x\ny"


@pytest.mark.parametrize("path", [REST, BULK], ids=["rest", "bulk"])
def test_rows_are_converted_for_the_store_off_the_loading_thread(
    emulator, client, engine, monkeypatch, path
):
    """The calling thread only sends statements: every batch's rows were made ready for the
    store (`prepare_upsert`) on a read-ahead thread, and written on the caller's."""
    from gtm_pipeline.sync import load

    threads: dict[str, set[int]] = {"prepared": set(), "written": set()}

    def spy(name, real):
        def call(*args, **kwargs):
            threads[name].add(threading.get_ident())
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(load, "prepare_upsert", spy("prepared", load.prepare_upsert))
    monkeypatch.setattr(load, "write_upsert", spy("written", load.write_upsert))
    options = SyncOptions(**path, batch_size=200, load_batch_rows=500, bulk_max_records=300)
    stats = sync_entity(client, engine, "t", PERSONS, options)
    assert stats.extraction == ("bulk" if path is BULK else "rest")
    assert threads["written"] == {threading.get_ident()}
    assert threads["prepared"] and threading.get_ident() not in threads["prepared"]
    reconcile(engine, "t", emulator, PERSONS)
