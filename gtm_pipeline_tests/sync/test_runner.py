"""Sync against the emulator over HTTPS, on SQLite and PostgreSQL, reconciled with ground truth."""

from __future__ import annotations

from gtm_pipeline.emulator.testing import running_emulator
from gtm_pipeline.store import get_cursor
from gtm_pipeline.sync.entities import EVENTS, SYNC_ORDER
from gtm_pipeline.sync.runner import SyncOptions, sync_entity
from gtm_pipeline_tests.support.sync import client_for
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


def test_rest_pages_are_joined_into_batches_that_commit_with_their_cursor(emulator, client, engine):
    persons = SYNC_ORDER[1]
    committed = []
    options = SyncOptions(batch_size=200, load_batch_rows=500)
    stats = sync_entity(client, engine, TENANT, persons, options, on_page=committed.append)
    modified = [p for p in committed if p.kind == "modified"]
    # 900 contacts (and a few served twice) in pages of 200: pages 1-3 commit together, then 4-5.
    assert [p.page_number for p in modified] == [3, 5]
    assert modified[0].rows >= 500
    assert stats.pages >= 5 and stats.rows_read == sum(p.rows for p in modified)
    with engine.connect() as conn:
        assert get_cursor(conn, TENANT, persons.name) == modified[-1].cursor
    reconcile(engine, TENANT, emulator, persons)


def test_batched_pages_keeps_order_skips_empty_pages_and_flushes_the_rest():
    import pandas as pd

    from gtm_pipeline.sync.extract import FetchedPage
    from gtm_pipeline.sync.runner import batched_pages

    pages = [FetchedPage(pd.DataFrame({"Id": list(range(n))}), i, 7) for i, n in
             enumerate([3, 0, 4, 2, 5], start=1)]  # fmt: skip
    joined = [(page.page_number, len(page.frame), count) for page, count in
              batched_pages(iter(pages), rows=6)]  # fmt: skip
    assert joined == [(3, 7, 2), (5, 7, 2)]
    assert [len(p.frame) for p, _ in batched_pages(iter(pages), rows=1)] == [3, 4, 2, 5]


def test_an_object_empty_at_its_first_sync_is_read_incrementally_afterwards(tmp_path, engine):
    counts = {"Account": 5, "Contact": 10, "Opportunity": 3}  # no Events at all
    with running_emulator(tmp_path / "empty", counts=counts, seed=3) as emulator:
        client = client_for(emulator)
        first = sync_entity(client, engine, TENANT, EVENTS)
        again = sync_entity(client, engine, TENANT, EVENTS)
        assert (first.mode, first.rows_read, again.mode) == ("full", 0, "incremental")
        account = next(iter(emulator.control.truth("Account")))["Id"]
        emulator.control.mutate([{"op": "insert", "object": "Event", "fields": {
            "Subject": "Kick-off", "WhatId": account, "DurationInMinutes": 30,
            "StartDateTime": "2024-05-01T09:00:00.000+0000",
            "EndDateTime": "2024-05-01T09:30:00.000+0000",
        }}])  # fmt: skip
        found = sync_entity(client, engine, TENANT, EVENTS)
        assert (found.mode, found.rows_read) == ("incremental", 1)
        reconcile(engine, TENANT, emulator, EVENTS)
