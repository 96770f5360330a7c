"""SIGKILL in the middle of a sync, then a rerun: exactly the Salesforce state, nothing duplicated.

A child process (crash_child.py) runs a full sync with batch size 200 and reports every committed
page on stdout; the parent kills it with SIGKILL after a seeded number of pages, sometimes at
once and sometimes a few milliseconds later, so the kill lands between pages, in an HTTP call
or inside a transaction. Every data call is slowed a little so the child always has work left
when the kill arrives.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from gtm_pipeline.store.quarantine import failures_for
from gtm_pipeline.store.slices import load_plan
from gtm_pipeline.store.tables import entity_rows
from gtm_pipeline.sync.entities import SYNC_ORDER, Entity
from gtm_pipeline.sync.load import deleted_cursor_key
from gtm_pipeline.sync.runner import SyncOptions, sync_entity
from gtm_pipeline_tests.support.sync import client_for
from gtm_pipeline_tests.sync.reconcile import reconcile
from gtm_pipeline_tests.sync.test_faults import TENANT, committed_cursor, stamp, stored_rows

REPO_ROOT = Path(__file__).resolve().parents[2]
BATCH_SIZE = 200
CALL_LATENCY_SECONDS = 0.04


def run_child_and_kill(
    emulator, database_url: str, kill_after: int, delay: float, log: Path
) -> list[dict]:
    """Start the child, kill it `delay` seconds after its `kill_after`-th committed page."""
    job = {"info": emulator.info, "database_url": database_url, "tenant": TENANT}
    with log.open("w") as stderr:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "gtm_pipeline_tests.sync.crash_child"],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            child.stdin.write(json.dumps({**job, "batch_size": BATCH_SIZE}))
            child.stdin.close()
            pages = []
            while len(pages) < kill_after:
                line = child.stdout.readline()
                if not line:
                    pytest.fail(f"the child ended early: {log.read_text()[-2000:]}")
                pages.append(json.loads(line))
            if delay:
                time.sleep(delay)
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert all("done" not in p for p in pages)
    return pages


def assert_at_or_past_the_reported_pages(engine: sa.Engine, entity: Entity, pages: list[dict]):
    """A page reported committed is committed: the stored cursor is at least its cursor."""
    for kind, key in (("modified", entity.name), ("deleted", deleted_cursor_key(entity))):
        reported = [p["cursor"] for p in pages if p["entity"] == entity.name and p["kind"] == kind]
        if not reported:
            continue
        cursor = committed_cursor(engine, key)
        assert cursor is not None
        stamp_text, record_id = reported[-1]
        seen = (datetime.fromisoformat(stamp_text), record_id)
        assert (cursor.system_modstamp, cursor.id) >= seen


def assert_nothing_lost_before_the_cursor(engine: sa.Engine, emulator, entity: Entity) -> None:
    """The killed run's state: whatever the cursor says was committed really is in the store."""
    cursor = committed_cursor(engine, entity.name)
    rows = stored_rows(engine, entity)
    if cursor is None:
        assert all(r.is_deleted for r in rows.values()), "live rows stored without a cursor"
        return
    with engine.connect() as conn:
        quarantined = {f["external_id"] for f in failures_for(conn, TENANT, entity.name)}
    live = [r for r in emulator.control.truth(entity.sf_object) if not r["IsDeleted"]]
    before = {r["Id"] for r in live if stamp(r) < cursor.system_modstamp}
    assert before <= set(rows) | quarantined
    live_rows = [r for r in rows.values() if not r.is_deleted]
    assert all(r.system_modstamp <= cursor.system_modstamp for r in live_rows)


def assert_nothing_lost_before_the_slice_positions(engine: sa.Engine, emulator, entity: Entity):
    """A parallel read left unfinished: every live record of a slice up to the position that
    slice committed (all of a finished slice) is in the store or in quarantine."""
    with engine.connect() as conn:
        plan = load_plan(conn, TENANT, entity.name)
        quarantined = {f["external_id"] for f in failures_for(conn, TENANT, entity.name)}
    stored = set(stored_rows(engine, entity)) | quarantined
    live = [r for r in emulator.control.truth(entity.sf_object) if not r["IsDeleted"]]
    for progress in plan:
        piece = progress.slice
        inside = [
            r for r in live
            if (piece.lower is None or stamp(r) >= piece.lower)
            and (piece.upper is None or stamp(r) < piece.upper)
        ]  # fmt: skip
        if not progress.done:
            reached = progress.cursor
            inside = [
                r
                for r in inside
                if reached and (stamp(r), r["Id"]) <= (reached.system_modstamp, reached.id)
            ]
        missing = {r["Id"] for r in inside} - stored
        assert not missing, f"{entity.name} slice {piece.number}: committed yet missing {missing}"


def assert_counts_equal_the_truth(engine: sa.Engine, emulator, entity: Entity) -> None:
    """One row per record Salesforce has (live or in the recycle bin), except the quarantined."""
    truth_ids = {r["Id"] for r in emulator.control.truth(entity.sf_object)}
    owned = entity_rows(entity.name)
    with engine.connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).select_from(owned.table).where(owned.of_tenant(TENANT))
        ).scalar_one()
        ids = set(
            conn.execute(sa.select(owned.table.c.external_id).where(owned.of_tenant(TENANT)))
            .scalars()
            .all()
        )
        quarantined = {f["external_id"] for f in failures_for(conn, TENANT, entity.name)}
    assert count == len(ids)
    assert ids <= truth_ids
    assert ids == truth_ids - (quarantined - ids)


def live_ids(emulator, sobject: str) -> list[str]:
    truth = emulator.control.truth(sobject)
    return [r["Id"] for r in truth if not r["IsDeleted"] and not r.get("_dirty")]


def delete_some(emulator, counts: dict[str, int]) -> dict[str, list[str]]:
    """Put records in the recycle bin, so the full sync has deletion pages to be killed in."""
    deleted = {}
    for sobject, n in counts.items():
        deleted[sobject] = live_ids(emulator, sobject)[-n:]
        emulator.control.mutate(
            [{"op": "delete", "object": sobject, "id": i} for i in deleted[sobject]]
        )
    return deleted


def change_while_down(emulator, deleted: dict[str, list[str]]) -> None:
    """What users do in Salesforce between the crash and the rerun."""
    a, b, c, d = live_ids(emulator, "Contact")[:4]
    emulator.control.mutate(
        [
            {"op": "update", "object": "Contact", "id": a, "fields": {"Title": "After crash"}},
            {"op": "update", "object": "Contact", "id": b, "fields": {"LastName": "Renamed"}},
            {"op": "delete", "object": "Contact", "id": c},
            {"op": "delete", "object": "Contact", "id": d},
            {"op": "undelete", "object": "Contact", "id": deleted["Contact"][0]},
            {"op": "insert", "object": "Contact", "fields": {"LastName": "New", "Email": "n@x.io"}},
            {"op": "update", "object": "Account", "id": live_ids(emulator, "Account")[0],
             "fields": {"Name": "Renamed Inc"}},
        ]
    )  # fmt: skip


# Seeds chosen so the kill lands in different phases of an 11-page full sync: right after the
# accounts page (no delay), in the middle of contacts (5 ms later), and after the contacts'
# deletion page while opportunities are read (20 ms later).
@pytest.mark.parametrize("seed", [2, 4, 11])
def test_sigkill_mid_sync_then_rerun_gives_exactly_the_salesforce_state(
    seed, emulator, engine, database_url, tmp_path
):
    rng = random.Random(seed)
    kill_after = rng.randint(1, 9)
    delay = rng.choice([0.0, 0.0, 0.005, 0.02])
    deleted = delete_some(emulator, {"Account": 4, "Contact": 12, "Opportunity": 5})
    emulator.control.add_fault(kind="latency", seconds=CALL_LATENCY_SECONDS, probability=1.0)

    pages = run_child_and_kill(emulator, database_url, kill_after, delay, tmp_path / "child.err")
    for entity in SYNC_ORDER:
        assert_at_or_past_the_reported_pages(engine, entity, pages)
        assert_nothing_lost_before_the_cursor(engine, emulator, entity)

    emulator.control.clear_faults()
    change_while_down(emulator, deleted)
    client = client_for(emulator)
    for entity in SYNC_ORDER:
        sync_entity(client, engine, TENANT, entity, SyncOptions(batch_size=BATCH_SIZE))
    for entity in SYNC_ORDER:
        reconcile(engine, TENANT, emulator, entity)
        assert_counts_equal_the_truth(engine, emulator, entity)
