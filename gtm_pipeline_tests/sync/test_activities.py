"""Tasks and Events into `activities`, on both stores, checked by the oracle (`reconcile.py`):
archived activities (returned only by queryAll) kept by full and incremental syncs, REST and Bulk
alike; polymorphic WhoId/WhatId resolved to their objects; deletions and undeletions; the gates
(an activity about nobody, or with no date, is quarantined); Tasks and Events apart in one table.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from gtm_pipeline.emulator.testing import EmulatorHandle, running_emulator
from gtm_pipeline.store.tables import activities, entity_rows
from gtm_pipeline.sync.entities import ACTIVITY_ENTITIES, EVENTS, TASKS
from gtm_pipeline.sync.reconciliation import reconcile_entity
from gtm_pipeline.sync.runner import SyncOptions, sync_entity
from gtm_pipeline.sync.soql import by_id_queries
from gtm_pipeline_tests.support.sync import client_for
from gtm_pipeline_tests.sync.reconcile import reconcile

TENANT = "acme"
COUNTS = {"Account": 30, "Contact": 120, "Opportunity": 40, "Lead": 60, "Task": 900, "Event": 300}
SMALL_PAGES = SyncOptions(batch_size=200)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@pytest.fixture()
def emulator(tmp_path) -> Iterator[EmulatorHandle]:
    with running_emulator(tmp_path / "emulator", counts=COUNTS, seed=23, dirty_ratio=0.06) as e:
        yield e


def sync_both(emulator, engine, options: SyncOptions = SMALL_PAGES) -> None:
    client = client_for(emulator)
    for entity in ACTIVITY_ENTITIES:
        sync_entity(client, engine, TENANT, entity, options)


def reconciled(emulator, engine) -> dict[str, dict]:
    return {e.name: reconcile(engine, TENANT, emulator, e) for e in ACTIVITY_ENTITIES}


def stored(engine, where: sa.ColumnElement[bool]) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.select(activities).where(where)).all()


def test_a_full_sync_stores_every_activity_archived_ones_included(emulator, engine):
    sync_both(emulator, engine)
    counts = reconciled(emulator, engine)
    assert counts["tasks"]["stored"] > 0 and counts["events"]["stored"] > 0
    assert counts["tasks"]["quarantined"] > 0  # the org's activities about nobody, or undated
    archived = stored(engine, activities.c.is_archived.is_(True))
    assert len(archived) > 0
    assert {r.kind for r in archived} == {"task", "event"}


def test_polymorphic_ids_name_their_objects(emulator, engine):
    sync_both(emulator, engine)
    rows = stored(engine, activities.c.tenant_id == TENANT)
    assert {r.who_object for r in rows if r.who_external_id} == {"Contact", "Lead"}
    assert {r.what_object for r in rows if r.what_external_id} == {"Account", "Opportunity"}
    assert all(r.who_object is None for r in rows if r.who_external_id is None)


def test_bulk_and_rest_give_the_same_activities(emulator, engine):
    sync_both(emulator, engine, SyncOptions(batch_size=200, bulk_threshold=1))
    counts = reconciled(emulator, engine)
    assert counts["tasks"]["stored"] > 0
    with engine.connect() as conn:
        extraction = conn.execute(
            sa.text("SELECT last_stats FROM sync_state WHERE entity = 'tasks'")
        ).scalar_one()
    assert "bulk" in str(extraction)


def test_incremental_syncs_keep_archived_activities_and_follow_every_change(emulator, engine):
    sync_both(emulator, engine)
    task, old_task = [
        r.external_id
        for r in stored(engine, activities.c.kind == "task")
        if r.is_archived and not r.is_deleted
    ][:2]
    fresh = next(
        r for r in stored(engine, activities.c.kind == "task")
        if not (r.is_archived or r.is_deleted)
    )  # fmt: skip
    event = next(r for r in emulator.control.truth("Event") if not r["IsDeleted"])
    emulator.control.mutate(
        [
            {"op": "archive", "object": "Task", "id": fresh.external_id},  # stamp unchanged
            {"op": "update", "object": "Task", "id": task, "fields": {"Subject": "Renewal"}},
            {"op": "delete", "object": "Task", "id": old_task},
            {"op": "delete", "object": "Event", "id": event["Id"]},
        ]
    )
    sync_both(emulator, engine)
    (renamed,) = stored(engine, activities.c.external_id == task)
    assert (renamed.subject, renamed.is_archived, renamed.is_deleted) == ("Renewal", True, False)
    (still,) = stored(engine, activities.c.external_id == fresh.external_id)
    assert (still.is_deleted, still.is_archived) == (False, False)  # its stamp did not move
    # Reconciliation sees the archive flag and reads the record again: nothing else differs.
    repaired = reconcile_entity(client_for(emulator), engine, TENANT, TASKS)
    assert (repaired.before.stale, repaired.after.stale) == (1, 0)
    reconciled(emulator, engine)

    emulator.control.mutate([{"op": "undelete", "object": "Event", "id": event["Id"]}])
    sync_both(emulator, engine)
    reconciled(emulator, engine)
    (back,) = stored(engine, activities.c.external_id == event["Id"])
    assert back.is_deleted is False


def test_an_activity_that_loses_its_person_and_record_leaves_the_live_set(emulator, engine):
    sync_both(emulator, engine)
    task = next(
        r for r in emulator.control.truth("Task")
        if r["WhoId"] and not r["WhatId"] and not r["IsDeleted"] and not r["IsArchived"]
    )  # fmt: skip
    emulator.control.mutate(
        [{"op": "update", "object": "Task", "id": task["Id"], "fields": {"WhoId": None}}]
    )
    sync_both(emulator, engine)
    reconciled(emulator, engine)  # quarantined with its newest values, its row gone
    assert stored(engine, activities.c.external_id == task["Id"]) == []


def test_reconciliation_sees_a_quarantined_activity_archived_since(emulator, engine):
    sync_both(emulator, engine)
    about_nobody = next(
        r for r in emulator.control.truth("Task")
        if not (r["WhoId"] or r["WhatId"] or r["IsDeleted"] or r["IsArchived"])
    )  # fmt: skip
    emulator.control.mutate([{"op": "archive", "object": "Task", "id": about_nobody["Id"]}])
    sync_both(emulator, engine)  # the stamp did not move: the incremental sync does not see it
    repaired = reconcile_entity(client_for(emulator), engine, TENANT, TASKS)
    assert (repaired.before.stale, repaired.after.stale) == (1, 0)
    reconciled(emulator, engine)  # its quarantine entry holds the archived version


def test_tasks_and_events_keep_to_their_own_rows(emulator, engine):
    sync_entity(client_for(emulator), engine, TENANT, TASKS, SMALL_PAGES)
    with engine.connect() as conn:
        events = conn.execute(
            sa.select(sa.func.count()).where(entity_rows(EVENTS.name).of_tenant(TENANT))
        ).scalar_one()
    assert events == 0
    reconcile(engine, TENANT, emulator, TASKS)
    # Reconciling Events before they are synced finds them missing, and touches no Task.
    result = reconcile_entity(client_for(emulator), engine, TENANT, EVENTS, dry_run=True)
    assert result.before.missing > 0 and result.before.ghosts == 0
    reconcile(engine, TENANT, emulator, TASKS)


def test_an_event_without_a_type_is_a_meeting_and_its_minutes_are_seconds(emulator, engine):
    sync_both(emulator, engine)
    event = next(
        r for r in stored(engine, activities.c.kind == "event")
        if not r.is_deleted and r.subtype != "meeting"
    )  # fmt: skip
    emulator.control.mutate(
        [
            {
                "op": "update",
                "object": "Event",
                "id": event.external_id,
                "fields": {"Type": None, "DurationInMinutes": 45},
            }
        ]
    )
    sync_both(emulator, engine)
    reconciled(emulator, engine)
    (met,) = stored(engine, activities.c.external_id == event.external_id)
    assert (met.subtype, met.duration_seconds) == ("meeting", 45 * 60)


def test_a_reread_by_id_returns_archived_activities_but_not_deleted_ones(emulator, engine):
    sync_both(emulator, engine)
    truth = [r for r in emulator.control.truth("Task") if not r["IsDeleted"]]
    archived = next(r["Id"] for r in truth if r["IsArchived"])
    gone = next(r["Id"] for r in truth if not r["IsArchived"])
    emulator.control.mutate([{"op": "delete", "object": "Task", "id": gone}])
    client = client_for(emulator)
    (soql,) = by_id_queries("Task", ["Subject"], [archived, gone], with_archived=True)
    read = [r["Id"] for p in client.query_pages(soql, include_deleted=True) for r in p.records]
    assert read == [archived]
