"""Sync against the emulator over HTTPS, on SQLite and PostgreSQL, reconciled with ground truth."""

from __future__ import annotations

from gtm_pipeline.store import get_cursor
from gtm_pipeline.sync.entities import SYNC_ORDER
from gtm_pipeline.sync.runner import SyncOptions, sync_entity
from gtm_pipeline_tests.sync.reconcile import reconcile

TENANT = "acme"


def sync_all(client, engine, **options):
    return {
        e.name: sync_entity(client, engine, TENANT, e, SyncOptions(**options)) for e in SYNC_ORDER
    }


def test_full_sync_reconciles_every_entity(emulator, client, engine):
    stats = sync_all(client, engine, batch_size=200)
    for entity in SYNC_ORDER:
        counts = reconcile(engine, TENANT, emulator, entity)
        s = stats[entity.name]
        assert s.mode == "full"
        assert counts["stored"] > 0 and counts["quarantined"] > 0
        assert s.quality.passed + s.quality.failed + s.quality.duplicates_removed == s.rows_read
        assert s.pages >= s.rows_read // 200


def test_incremental_with_nothing_changed_makes_two_calls_per_entity(emulator, client, engine):
    sync_all(client, engine)
    before = client.calls_made
    stats = sync_all(client, engine)
    assert all(s.mode == "incremental" for s in stats.values())
    assert client.calls_made - before == 2 * len(SYNC_ORDER)


def test_updates_deletes_undeletes_and_late_commits_reconcile(emulator, client, engine):
    sync_all(client, engine)
    truth = [
        r for r in emulator.control.truth("Contact") if not r["IsDeleted"] and not r.get("_dirty")
    ]
    a, b, c, d = (r["Id"] for r in truth[:4])
    emulator.control.mutate(
        [
            {
                "op": "update",
                "object": "Contact",
                "id": a,
                "fields": {"Title": "Chief Revenue Officer"},
            },
            {"op": "delete", "object": "Contact", "id": b},
            {"op": "delete", "object": "Contact", "id": c},
            {
                "op": "late_commit",
                "object": "Contact",
                "id": d,
                "fields": {"LastName": "Late"},
                "age_seconds": 120,
            },
        ]
    )
    sync_all(client, engine)
    emulator.control.mutate({"op": "undelete", "object": "Contact", "id": c})
    sync_all(client, engine)
    persons = next(e for e in SYNC_ORDER if e.name == "persons")
    reconcile(engine, TENANT, emulator, persons)


def test_many_records_sharing_one_stamp_across_pages_are_all_read(emulator, client, engine):
    sync_all(client, engine, batch_size=200)
    emulator.control.mutate({"op": "touch_many", "object": "Contact", "count": 450})
    sync_all(client, engine, batch_size=200)
    persons = next(e for e in SYNC_ORDER if e.name == "persons")
    reconcile(engine, TENANT, emulator, persons)
    with engine.connect() as conn:
        assert get_cursor(conn, TENANT, "persons") is not None
