"""The store failing under a running sync: PostgreSQL backends terminated, SQLite out of space.

The machine's PostgreSQL server is shared, so it is never restarted: the test terminates the
sync's own backends (`pg_terminate_backend` on the test database only) right before a seeded SQL
statement, which lands inside a page's transaction. SQLite's disk-full is `max_page_count`, set on
every new connection of the sync's engine, so the file stops growing a few pages in.
"""

from __future__ import annotations

import random
import re

import pytest
import sqlalchemy as sa

from gtm_pipeline.store import make_engine
from gtm_pipeline.sync.entities import SYNC_ORDER
from gtm_pipeline.sync.runner import SyncOptions, sync_entity
from gtm_pipeline_tests.modes import scaled
from gtm_pipeline_tests.reliability.crashing import StatementCounter
from gtm_pipeline_tests.reliability.invariants import (
    InjectAfter,
    assert_exactly_the_truth,
    assert_only_committed_data,
)
from gtm_pipeline_tests.support.reliability import POSTGRES_ONLY, SEED, announce
from gtm_pipeline_tests.support.sync import client_for
from gtm_pipeline_tests.sync.test_faults import sync_all

BATCH_SIZE = 200
CONNECTION_LOST = (
    "terminating connection due to administrator command|server closed the connection unexpectedly"
)


class TerminateAt:
    """before_cursor_execute: at statement `at`, terminate every other backend of this database."""

    def __init__(self, admin: sa.Engine, at: int) -> None:
        self.admin, self.at, self.seen, self.terminated = admin, at, 0, 0

    def __call__(self, *_args: object) -> None:
        self.seen += 1
        if self.seen != self.at:
            return
        with self.admin.connect() as conn:
            self.terminated = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()


@POSTGRES_ONLY
def test_backends_terminated_mid_sync_fail_the_run_clearly_and_the_rerun_reconciles(
    emulator, engine, database_url
):
    rng = random.Random(f"{SEED}-terminate")
    client = client_for(emulator)
    with StatementCounter(engine) as counted:
        for entity in SYNC_ORDER:
            sync_entity(client, engine, "calibration", entity, SyncOptions(batch_size=BATCH_SIZE))
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    points, failed = scaled(3, 20), 0
    try:
        for point in range(points):
            if point:
                emulator.control.mutate({"op": "touch_many", "object": "Contact", "count": 400})
            hook = TerminateAt(admin, rng.randint(1, counted.count - 1))
            log = InjectAfter(10**6, lambda: None)
            sa.event.listen(engine, "before_cursor_execute", hook)
            try:
                sync_all(client, engine, on_page=log, batch_size=BATCH_SIZE, full=point > 0)
            except sa.exc.OperationalError as exc:
                # psycopg words it by when the termination reached the statement in flight.
                assert re.search(CONNECTION_LOST, str(exc)), exc
                failed += 1
            finally:
                sa.event.remove(engine, "before_cursor_execute", hook)
            assert hook.terminated >= 1 or hook.seen < hook.at, f"point {point}: nothing ended"
            # The pool replaces its dead connections (pre-ping); the committed pages stand.
            assert_only_committed_data(engine, emulator, log.pages)
            sync_all(client, engine, batch_size=BATCH_SIZE)
            assert_exactly_the_truth(engine, emulator)
    finally:
        admin.dispose()
    assert failed >= 1, "at least one termination must have hit a statement in flight"
    announce("postgres_backends_terminated", f"survived {points} terminations ({failed} mid-run)")


def cap_file_growth(engine: sa.Engine, spare_bytes: int) -> None:
    """Every new connection of `engine` may grow the database file by `spare_bytes` only."""

    @sa.event.listens_for(engine, "connect")
    def _cap(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        try:
            pages = cursor.execute("PRAGMA page_count").fetchone()[0]
            spare_pages = spare_bytes // cursor.execute("PRAGMA page_size").fetchone()[0]
            cursor.execute(f"PRAGMA max_page_count = {pages + spare_pages}")
        finally:
            cursor.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_disk_full_fails_clearly_keeps_what_was_committed_and_resumes(
    emulator, engine, database_url
):
    client = client_for(emulator)
    full_disk = make_engine(database_url)
    cap_file_growth(full_disk, spare_bytes=240 * 1024)  # room for a few pages of rows
    log = InjectAfter(10**6, lambda: None)
    with pytest.raises(sa.exc.OperationalError, match="database or disk is full"):
        sync_all(client, full_disk, on_page=log, batch_size=BATCH_SIZE)
    full_disk.dispose()
    assert log.pages, "the cap was meant to leave room for a few pages"
    assert_only_committed_data(engine, emulator, log.pages)

    sync_all(client, engine, batch_size=BATCH_SIZE)
    assert_exactly_the_truth(engine, emulator)
    announce("sqlite_disk_full", f"survived a full disk after {len(log.pages)} committed pages")
