"""Syncs against an adversarial emulator, on SQLite and PostgreSQL, each reconciled with the truth.

Faults are injected through the emulator's control API, several of them from the runner's
`on_page` callback so they land at a known point: after a given committed page. Control calls
are not counted against the API budget, so injecting a fault never changes what it tests.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gtm_pipeline.emulator.testing import (
    EmulatorHandle,
    TokenRefresher,
    obtain_tokens,
)
from gtm_pipeline.salesforce.client import ClientConfig, Credentials, SalesforceClient
from gtm_pipeline.salesforce.errors import (
    ApiLimitExceeded,
    ApiUsageGuardTripped,
    SalesforceUnavailable,
)
from gtm_pipeline.store import Cursor, get_cursor, save_cursor, sync_state
from gtm_pipeline.store.quarantine import failures_for
from gtm_pipeline.store.tables import entity_rows
from gtm_pipeline.sync.entities import PERSONS, SYNC_ORDER, Entity
from gtm_pipeline.sync.load import deleted_cursor_key
from gtm_pipeline.sync.reconciliation import reconcile_entity
from gtm_pipeline.sync.runner import PageProgress, SyncOptions, SyncStats, sync_entity
from gtm_pipeline_tests.support.sync import client_for
from gtm_pipeline_tests.sync.reconcile import reconcile

TENANT = "acme"
QUERY_MORE = r"/query/01g"  # nextRecordsUrl pages (query and queryAll alike)
FIRST_PAGE = r"/query/?$"
QUERY_ALL = r"/queryAll/?$"


def sync_all(
    client: SalesforceClient,
    engine: sa.Engine,
    on_page: Callable[[PageProgress], None] | None = None,
    **options,
) -> dict[str, SyncStats]:
    # These tests stop runs after a number of committed pages: one page per committed batch.
    options.setdefault("load_batch_rows", options.get("batch_size", 2000))
    return {
        e.name: sync_entity(client, engine, TENANT, e, SyncOptions(**options), on_page=on_page)
        for e in SYNC_ORDER
    }


def reconcile_all(engine: sa.Engine, emulator: EmulatorHandle) -> dict[str, dict]:
    return {e.name: reconcile(engine, TENANT, emulator, e) for e in SYNC_ORDER}


def stamp(record: dict) -> datetime:
    return datetime.strptime(record["SystemModstamp"], "%Y-%m-%dT%H:%M:%S.%f%z")


def stored_rows(engine: sa.Engine, entity: Entity) -> dict[str, sa.Row]:
    owned = entity_rows(entity.name)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(owned.table).where(owned.of_tenant(TENANT)))
        return {r.external_id: r for r in rows}


def committed_cursor(engine: sa.Engine, key: str) -> Cursor | None:
    with engine.connect() as conn:
        return get_cursor(conn, TENANT, key)


def assert_store_ends_at_cursor(
    engine: sa.Engine, emulator: EmulatorHandle, entity: Entity, cursor: Cursor
) -> None:
    """Everything before the cursor's stamp is stored (or quarantined); nothing after it is.

    Compared by stamp only: the order of equal stamps is the server's business.
    """
    rows = stored_rows(engine, entity)
    with engine.connect() as conn:
        quarantined = {f["external_id"] for f in failures_for(conn, TENANT, entity.name)}
    live = [r for r in emulator.control.truth(entity.sf_object) if not r["IsDeleted"]]
    before = {r["Id"] for r in live if stamp(r) < cursor.system_modstamp}
    assert before <= set(rows) | quarantined, "rows before the committed cursor are missing"
    assert all(r.system_modstamp <= cursor.system_modstamp for r in rows.values())
    assert len(rows) < len(live), "the run was meant to stop part way"


def stamp_of(emulator: EmulatorHandle, record_id: str) -> datetime:
    (record,) = [r for r in emulator.control.truth("Contact") if r["Id"] == record_id]
    return stamp(record)


def last_succeeded(engine: sa.Engine, entity: Entity):
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sync_state.c.last_succeeded_at).where(
                sync_state.c.tenant_id == TENANT, sync_state.c.entity == entity.name
            )
        ).scalar_one_or_none()


class PageLog:
    """Records committed pages and runs `action` once, after the `after`-th page of `entity`."""

    def __init__(self, entity: Entity, after: int, action: Callable[[], object]) -> None:
        self.entity, self.after, self.action = entity, after, action
        self.pages: list[PageProgress] = []
        self.fired = False

    def __call__(self, progress: PageProgress) -> None:
        self.pages.append(progress)
        mine = [p for p in self.pages if p.entity == self.entity.name and p.kind == "modified"]
        if not self.fired and len(mine) == self.after:
            self.fired = True
            self.action()

    def last_cursor(self, entity: Entity) -> Cursor | None:
        mine = [p for p in self.pages if p.entity == entity.name and p.kind == "modified"]
        return mine[-1].cursor if mine else None


# -- transport and session faults ----------------------------------------------------------------


def test_session_expiry_mid_pagination_refreshes_once_and_loses_nothing(emulator, engine):
    tokens = obtain_tokens(emulator.info)
    refresher = TokenRefresher(emulator.info, tokens["refresh_token"])
    client = SalesforceClient(
        Credentials(tokens["instance_url"], tokens["access_token"]),
        config=ClientConfig(
            ca_bundle=emulator.info["ca_bundle"], api_version=emulator.info["api_version"]
        ),
        refresh=refresher,
        sleep=lambda _s: None,
    )
    # accounts: query + queryAll; contacts: first page, then the session dies before page 2.
    emulator.control.add_fault(kind="expire_sessions", after_calls=3)
    stats = sync_all(client, engine, batch_size=200)
    assert refresher.calls == 1
    assert emulator.control.faults() == []
    assert stats["persons"].pages >= 5
    counts = reconcile_all(engine, emulator)
    assert all(c["stored"] > 0 for c in counts.values())


def test_503_bursts_and_dropped_connections_are_retried_and_lose_nothing(emulator, client, engine):
    # Pages of any size up to the batch asked for, as Salesforce is free to serve.
    emulator.control.configure(page_size={"mode": "random", "minimum": 20, "seed": 5})
    emulator.control.add_faults(
        [
            {"kind": "status", "status": 503, "times": 4, "path": QUERY_MORE},
            {"kind": "drop", "times": 2, "path": QUERY_ALL},
            {"kind": "status", "status": 502, "times": 1, "path": FIRST_PAGE},
        ]
    )
    emulator.control.reset_stats()
    stats = sync_all(client, engine, batch_size=200)
    assert emulator.control.faults() == [], "every injected fault reached the connector"
    calls = emulator.control.stats()["calls"]
    sent = calls["query"] + calls["queryAll"] + calls["query_more"]
    assert client.calls_made == sent
    assert sum(s.api_calls for s in stats.values()) == sent
    reconcile_all(engine, emulator)


def test_a_drop_on_a_later_page_is_retried_in_place(emulator, client, engine):
    emulator.control.add_fault(kind="drop", times=3, path=QUERY_MORE)
    sync_all(client, engine, batch_size=200)
    assert emulator.control.faults() == []
    reconcile_all(engine, emulator)


# -- the API budget ------------------------------------------------------------------------------


def spend_the_budget(emulator: EmulatorHandle) -> Callable[[], object]:
    """Another tool spends the rest of the org's budget: the next call gets 403."""

    def action() -> None:
        used = emulator.control.stats()["api_usage"]["used"]
        emulator.control.configure(daily_api_limit=used)

    return action


def test_budget_exhausted_mid_run_stops_at_the_last_committed_page_then_resumes(
    emulator, client, engine
):
    log = PageLog(PERSONS, after=2, action=spend_the_budget(emulator))
    with pytest.raises(ApiLimitExceeded, match="REQUEST_LIMIT_EXCEEDED") as caught:
        sync_all(client, engine, on_page=log, batch_size=200)
    assert not isinstance(caught.value, ApiUsageGuardTripped)
    cursor = committed_cursor(engine, "persons")
    assert cursor is not None and cursor == log.last_cursor(PERSONS)
    # Pages read ahead before the budget ran out are still loaded (the fetch and the gates run
    # up to a few batches ahead); the run stops at the first call refused, here at the latest
    # the recycle-bin query after the 5 pages of 200.
    committed_pages = [p.page_number for p in log.pages if p.entity == "persons"]
    assert 2 <= len(committed_pages) <= 5
    assert committed_pages == list(range(1, len(committed_pages) + 1))
    assert_store_ends_at_cursor(engine, emulator, PERSONS, cursor)
    assert last_succeeded(engine, PERSONS) is None
    assert committed_cursor(engine, "opportunities") is None
    reconcile(
        engine, TENANT, emulator, SYNC_ORDER[0]
    )  # accounts finished before the budget ran out

    emulator.control.configure(reset_usage=True, daily_api_limit=15000)
    stats = sync_all(client, engine, batch_size=200)
    assert stats["persons"].mode == "incremental" and stats["opportunities"].mode == "full"
    assert last_succeeded(engine, PERSONS) is not None
    reconcile_all(engine, emulator)


def test_the_usage_guard_tripping_mid_run_behaves_the_same_way(emulator, engine):
    # 2 calls for accounts, then contacts pages; the guard stops before call 6 (share 0.5 of 10).
    emulator.control.configure(daily_api_limit=10)
    client = client_for(emulator, usage_guard_share=0.5)
    log = PageLog(PERSONS, after=10_000, action=lambda: None)
    with pytest.raises(ApiUsageGuardTripped, match="50%") as caught:
        sync_all(client, engine, on_page=log, batch_size=200)
    assert (caught.value.used, caught.value.total) == (5, 10)
    assert emulator.control.stats()["api_usage"]["used"] == 5, "the guard stops before calling"
    cursor = committed_cursor(engine, "persons")
    assert cursor is not None and cursor == log.last_cursor(PERSONS)
    assert_store_ends_at_cursor(engine, emulator, PERSONS, cursor)

    emulator.control.configure(reset_usage=True, daily_api_limit=15000)
    # A new run builds a new client; the tripped one only knows the usage it last saw.
    sync_all(client_for(emulator), engine, batch_size=200)
    reconcile_all(engine, emulator)


def test_a_persistent_500_fails_the_run_and_a_rerun_reconciles(emulator, client, engine):
    # Armed before the run: every page after a first page fails (Accounts fit in one page), so
    # Contacts stop after their first committed page whatever the read-ahead fetched meanwhile.
    emulator.control.add_fault(kind="status", status=500, probability=1.0, path=QUERY_MORE)
    log = PageLog(PERSONS, after=0, action=lambda: None)
    with pytest.raises(SalesforceUnavailable, match="HTTP 500 UNKNOWN_EXCEPTION"):
        sync_all(client, engine, on_page=log, batch_size=200)
    cursor = committed_cursor(engine, "persons")
    assert cursor == log.last_cursor(PERSONS)
    assert_store_ends_at_cursor(engine, emulator, PERSONS, cursor)
    assert last_succeeded(engine, PERSONS) is None

    emulator.control.clear_faults()
    sync_all(client, engine, batch_size=200)
    reconcile_all(engine, emulator)


# -- what Salesforce does to records -------------------------------------------------------------


def clean_live_ids(
    emulator: EmulatorHandle, engine: sa.Engine, entity: Entity, n: int
) -> list[str]:
    """Records without dirt that the store holds live (a shared email can quarantine one)."""
    stored = {i for i, r in stored_rows(engine, entity).items() if not r.is_deleted}
    truth = emulator.control.truth(entity.sf_object)
    clean = [r["Id"] for r in truth if not r["IsDeleted"] and not r.get("_dirty")]
    return [i for i in clean if i in stored][:n]


def test_purged_records_stay_flagged_deleted_and_an_undelete_comes_back(emulator, client, engine):
    sync_all(client, engine)
    a, b, c = clean_live_ids(emulator, engine, PERSONS, 3)
    emulator.control.mutate([{"op": "delete", "object": "Contact", "id": i} for i in (a, b, c)])
    sync_all(client, engine)
    assert all(stored_rows(engine, PERSONS)[i].is_deleted for i in (a, b, c))

    emulator.control.mutate([{"op": "purge", "object": "Contact", "id": i} for i in (a, b)])
    stats = sync_all(client, engine)
    rows = stored_rows(engine, PERSONS)
    assert rows[a].is_deleted and rows[b].is_deleted and rows[a].deleted_at is not None
    assert stats["persons"].rows_deleted == 1  # c, re-read inside the lookback
    reconcile_all(engine, emulator)

    emulator.control.mutate({"op": "undelete", "object": "Contact", "id": c})
    sync_all(client, engine)
    row = stored_rows(engine, PERSONS)[c]
    assert not row.is_deleted and row.deleted_at is None
    reconcile_all(engine, emulator)


def test_a_delete_purged_before_any_sync_saw_it_is_noticed_by_reconciliation(
    emulator, client, engine
):
    sync_all(client, engine)
    (a,) = clean_live_ids(emulator, engine, PERSONS, 1)
    emulator.control.mutate(
        [
            {"op": "delete", "object": "Contact", "id": a},
            {"op": "purge", "object": "Contact", "id": a},
        ]
    )
    sync_all(client, engine, full=True)
    assert not stored_rows(engine, PERSONS)[a].is_deleted, "nothing Salesforce serves shows it"

    result = reconcile_entity(client, engine, TENANT, PERSONS)
    assert (result.before.ghosts, result.before.purged, result.after.total) == (1, 1, 0)
    row = stored_rows(engine, PERSONS)[a]
    assert (row.is_deleted, row.deleted_reason) == (True, "purged")
    reconcile_all(engine, emulator)


def test_late_commits_inside_the_lookback_are_caught_older_ones_by_reconciliation(
    emulator, client, engine
):
    """The lookback (10 minutes) is the limit: a commit that becomes visible later than that
    after its stamp is missed by incremental syncs; reconciliation re-reads it by Id without
    moving the cursor."""
    sync_all(client, engine)
    anchor, inside, outside = clean_live_ids(emulator, engine, PERSONS, 3)
    # Move the cursor to "now", as a live org's would be.
    emulator.control.mutate(
        {"op": "update", "object": "Contact", "id": anchor, "fields": {"Title": "Now"}}
    )
    sync_all(client, engine)
    emulator.control.mutate(
        [
            {
                "op": "late_commit",
                "object": "Contact",
                "id": inside,
                "fields": {"LastName": "Inside"},
                "age_seconds": 300,
            },
            {
                "op": "late_commit",
                "object": "Contact",
                "id": outside,
                "fields": {"LastName": "Outside"},
                "age_seconds": 1200,
            },
        ]
    )
    stats = sync_all(client, engine)
    assert stats["persons"].mode == "incremental"
    rows = stored_rows(engine, PERSONS)
    assert rows[inside].last_name == "Inside"
    assert rows[outside].last_name != "Outside", "older than the lookback: missed"
    with pytest.raises(AssertionError):
        reconcile(engine, TENANT, emulator, PERSONS)

    result = reconcile_entity(client, engine, TENANT, PERSONS)
    assert (result.before.stale, result.after.total, result.records_reread) == (1, 0, 1)
    assert stored_rows(engine, PERSONS)[outside].last_name == "Outside"
    with engine.connect() as conn:
        assert get_cursor(conn, TENANT, PERSONS.name).system_modstamp > stamp_of(emulator, outside)
    reconcile_all(engine, emulator)


def test_a_deletion_visible_later_than_the_lookback_is_caught_by_a_full_sync(
    emulator, client, engine
):
    sync_all(client, engine)
    (late,) = clean_live_ids(emulator, engine, PERSONS, 1)
    emulator.control.mutate({"op": "delete", "object": "Contact", "id": late})
    # The deletion cursor already passed its stamp by more than the lookback when it showed up.
    ahead = Cursor(datetime.now(UTC) + timedelta(hours=1), "003zzzzzzzzzzzzzzz")
    with engine.begin() as conn:
        save_cursor(conn, TENANT, deleted_cursor_key(PERSONS), ahead, "incremental")
    sync_all(client, engine)
    assert not stored_rows(engine, PERSONS)[late].is_deleted, "missed by the lookback"

    stats = sync_all(client, engine, full=True)
    assert stored_rows(engine, PERSONS)[late].is_deleted
    assert stats["persons"].rows_deleted >= 1
    reconcile_all(engine, emulator)
