"""SIGKILL at seeded points of a full sync (a child process), then an ordinary rerun.

Each crash point is exact (kill_hooks.py): before the Nth SQL statement, which lands inside a
page's transaction or just before its commit, or right after the Nth Salesforce data response.
After each kill the store must hold only committed data, its cursor not ahead of it; after the
rerun it must equal the emulator's ground truth. Between points the org changes as users change
it, and every later point is a full re-read over a complete store. A seeded half of the points
read Contacts and Opportunities through Bulk API 2.0, whose cursors move only with the last result
set: rows of earlier sets may be committed with no cursor yet, which the next run re-reads.
"""

from __future__ import annotations

import random

import pytest

from gtm_pipeline.emulator.testing import EmulatorHandle
from gtm_pipeline.sync.entities import SYNC_ORDER
from gtm_pipeline.sync.runner import SyncOptions, sync_entity
from gtm_pipeline_tests.modes import scaled
from gtm_pipeline_tests.reliability.crashing import StatementCounter, kill_point, run_child
from gtm_pipeline_tests.reliability.invariants import (
    assert_exactly_the_truth,
    assert_only_committed_data,
)
from gtm_pipeline_tests.reliability.kill_hooks import KINDS
from gtm_pipeline_tests.support.reliability import POSTGRES_ONLY, SEED, announce
from gtm_pipeline_tests.support.sync import client_for
from gtm_pipeline_tests.sync.test_crash import BATCH_SIZE, live_ids
from gtm_pipeline_tests.sync.test_faults import TENANT, sync_all


def change_the_org(emulator: EmulatorHandle, rng: random.Random, step: int) -> None:
    """What users do in Salesforce between two runs: edits, inserts, deletes, undeletes."""
    contacts = live_ids(emulator, "Contact")
    edited, removed = rng.sample(contacts, 5), rng.sample(contacts, 2)
    binned = [r["Id"] for r in emulator.control.truth("Contact") if r["IsDeleted"]]
    ops = [
        {"op": "update", "object": "Contact", "id": i, "fields": {"Title": f"Step {step}"}}
        for i in edited if i not in removed
    ]  # fmt: skip
    ops += [{"op": "delete", "object": "Contact", "id": i} for i in removed]
    ops += [{"op": "undelete", "object": "Contact", "id": i} for i in binned[:1]]
    new = {"LastName": f"New {step}", "Email": f"new{step}@example.com"}
    ops.append({"op": "insert", "object": "Contact", "fields": new})
    account = rng.choice(live_ids(emulator, "Account"))
    ops.append({"op": "update", "object": "Account", "id": account, "fields": {"Name": f"A{step}"}})
    ops.append({"op": "touch_many", "object": "Opportunity", "count": 40})
    emulator.control.mutate(ops)


BULK_THRESHOLD = 200  # Accounts (120) through REST; Contacts and Opportunities through Bulk
MODES = {
    "rest": {"bulk_threshold": None},
    "bulk": {"bulk_threshold": BULK_THRESHOLD},
    # Full reads of more than 200 records in up to 4 parallel slices, REST pages below the Bulk
    # threshold (none here) and one Bulk job a slice above it.
    "slices": {"bulk_threshold": None, "parallel_reads": 4, "min_slice_records": 100},
    "bulk slices": {
        "bulk_threshold": BULK_THRESHOLD,
        "parallel_reads": 4,
        "min_slice_records": 100,
    },
}


def sync_job(
    emulator: EmulatorHandle, database_url: str, kill: dict, full: bool, mode: str
) -> dict:
    return {"info": emulator.info, "database_url": database_url, "tenant": TENANT,
            "task": "sync", "full": full, "batch_size": BATCH_SIZE, "kill": kill,
            **MODES[mode]}  # fmt: skip


def calibrate(client, engine, mode: str) -> tuple[int, int]:
    """Statements and data responses of one full sync, on a tenant of its own."""
    options = SyncOptions(batch_size=BATCH_SIZE, **MODES[mode])
    with StatementCounter(engine) as counted:
        calls = client.calls_made
        for entity in SYNC_ORDER:
            sync_entity(client, engine, f"calibration-{mode}", entity, options)
    return counted.count, client.calls_made - calls


@pytest.mark.heavy
@POSTGRES_ONLY
def test_sync_killed_at_seeded_points_then_rerun_equals_the_truth(emulator, engine, database_url):
    rng = random.Random(SEED)
    points = scaled(8, 50)
    client = client_for(emulator)
    sizes = {mode: calibrate(client, engine, mode) for mode in MODES}

    killed = []
    for step in range(points):
        if step:
            change_the_org(emulator, rng, step)
        mode = list(MODES)[step % len(MODES)]
        kill = kill_point(rng, *sizes[mode])
        run = run_child(sync_job(emulator, database_url, kill, full=step > 0, mode=mode))
        where = f"step {step}, {mode}, kill {kill}, seed {SEED}"
        assert run.killed or run.done, where
        if run.killed:
            killed.append({**kill, "mode": mode})
        pages = [p for p in run.lines if "entity" in p]
        # Bulk and sliced reads commit rows before the entity's cursor moves (with the last
        # result set, with the last slice): rows with no cursor yet are expected.
        assert_only_committed_data(engine, emulator, pages, cursor_held=mode != "rest")
        sync_all(client, engine, batch_size=BATCH_SIZE)
        assert_exactly_the_truth(engine, emulator)
    assert len(killed) >= points * 0.8, f"most points must kill the child: {killed}"
    kinds = {k: sum(1 for x in killed if x["kind"] == k) for k in KINDS}
    kinds.update({mode: sum(1 for x in killed if x["mode"] == mode) for mode in MODES})
    announce("sync_sigkill", f"survived {len(killed)} crash points {kinds} of {points}")
