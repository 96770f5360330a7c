"""The store follows Salesforce: email twins, records turning invalid and back, REST against Bulk,
and reconciliation's drift classes and repairs, on SQLite and PostgreSQL.

Each scenario asserts what it is about directly and then through the oracle
(`reconcile.reconcile`), which compares every canonical column with the emulator's truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gtm_pipeline.emulator.testing import EmulatorHandle, running_emulator
from gtm_pipeline.salesforce.bulk_jobs import BulkPollPolicy
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.store import CANONICAL_TABLES, Cursor, get_cursor, save_cursor
from gtm_pipeline.store.tables import entity_rows, is_live, quality_failures, sync_state
from gtm_pipeline.sync import runner
from gtm_pipeline.sync.entities import PERSONS, SYNC_ORDER, Entity
from gtm_pipeline.sync.load import deleted_cursor_key
from gtm_pipeline.sync.reconciliation import ReconcileOptions, reconcile_entity
from gtm_pipeline.sync.runner import PageProgress, SyncOptions, SyncStats, sync_entity
from gtm_pipeline_tests.support.sync import client_for
from gtm_pipeline_tests.sync.reconcile import judged, reconcile, stamp_of

TENANT = "acme"
COUNTS = {"Account": 30, "Contact": 120, "Lead": 60, "Opportunity": 30, "Task": 90, "Event": 30}
FAST_POLL = BulkPollPolicy(initial_seconds=0.0, max_interval_seconds=0.01, timeout_seconds=30)
DELETED_COLUMNS = ("external_id", "is_deleted", "deleted_at", "system_modstamp")
FAILURE_COLUMNS = ("entity", "external_id", "stage", "field", "reason", "raw", "system_modstamp")


@pytest.fixture()
def emulator(tmp_path) -> Iterator[EmulatorHandle]:
    with running_emulator(tmp_path / "emulator", counts=COUNTS, seed=18, dirty_ratio=0.1) as h:
        yield h


# -- helpers (the convergence property uses them too) --------------------------------------------


def sync_all(
    client: SalesforceClient,
    engine: sa.Engine,
    tenant: str = TENANT,
    on_page: Callable[[PageProgress], None] | None = None,
    **options,
) -> dict[str, SyncStats]:
    options.setdefault("bulk_poll", FAST_POLL)
    return {
        e.name: sync_entity(client, engine, tenant, e, SyncOptions(**options), on_page=on_page)
        for e in SYNC_ORDER
    }


def assert_oracle(engine: sa.Engine, emulator: EmulatorHandle, tenant: str = TENANT) -> dict:
    return {e.name: reconcile(engine, tenant, emulator, e) for e in SYNC_ORDER}


def rows_of(engine: sa.Engine, entity: Entity, tenant: str = TENANT) -> dict[str, dict]:
    """Every row of the tenant's table, every column but tenant_id and synced_at."""
    owned = entity_rows(entity.name)
    with engine.connect() as conn:
        found = conn.execute(sa.select(owned.table).where(owned.of_tenant(tenant))).mappings()
        return {
            r["external_id"]: {k: v for k, v in r.items() if k not in ("tenant_id", "synced_at")}
            for r in found
        }


def failures_of(engine: sa.Engine, tenant: str = TENANT) -> dict[tuple[str, str, str], dict]:
    """The tenant's quarantine without its timestamps and run ids, by (entity, id, stage)."""
    table = quality_failures
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(*(table.c[c] for c in FAILURE_COLUMNS)).where(table.c.tenant_id == tenant)
        ).mappings()
        return {(f["entity"], f["external_id"], f["stage"]): dict(f) for f in found}


def store_of(engine: sa.Engine, tenant: str) -> dict:
    """What the property and the REST/Bulk comparison compare: rows and quarantine."""
    return {
        **{e.name: rows_of(engine, e, tenant) for e in SYNC_ORDER},
        "quality_failures": failures_of(engine, tenant),
    }


def store_differences(ours: dict, fresh: dict, *, purged_allowed: set[str] = frozenset()) -> list:
    """How `ours` differs from `fresh` (a full sync into an empty store): live rows on every
    column, deleted rows on DELETED_COLUMNS, rows of `purged_allowed` ids only in `ours` if they
    are flagged deleted, and the quarantine entry by entry."""
    found = []
    for entity in SYNC_ORDER:
        mine, theirs = ours[entity.name], fresh[entity.name]
        for external_id in sorted(set(mine) | set(theirs)):
            a, b = mine.get(external_id), theirs.get(external_id)
            if b is None and a is not None and a["is_deleted"] and external_id in purged_allowed:
                continue
            if a is None or b is None:
                where = "ours" if b is None else "fresh"
                found.append((entity.name, external_id, "only in", where))
            elif b["is_deleted"] or a["is_deleted"]:
                first, second = ({c: r[c] for c in DELETED_COLUMNS} for r in (a, b))
                if first != second:
                    found.append((entity.name, external_id, first, second))
            elif a != b:
                changed = {c: (a[c], b.get(c)) for c in a if a[c] != b.get(c)}
                found.append((entity.name, external_id, changed))
    mine, theirs = ours["quality_failures"], fresh["quality_failures"]
    for key in sorted(set(mine) | set(theirs)):
        if mine.get(key) != theirs.get(key):
            found.append(("quality_failures", key, mine.get(key), theirs.get(key)))
    return found


def truth_of(emulator: EmulatorHandle, sobject: str) -> dict[str, dict]:
    return {r["Id"]: r for r in emulator.control.truth(sobject)}


def clean_contacts(emulator: EmulatorHandle, engine: sa.Engine, n: int) -> list[str]:
    """Live, valid Contacts stored as survivors (no twin), smallest ids first."""
    rows = rows_of(engine, PERSONS)
    valid = [
        i
        for i, r in sorted(truth_of(emulator, "Contact").items())
        if not r["IsDeleted"] and not r.get("_dirty") and isinstance(judged("persons", r), dict)
    ]
    found = [i for i in valid if i in rows and rows[i]["duplicate_of"] is None]
    assert len(found) >= n
    return found[:n]


def update(emulator: EmulatorHandle, record_id: str, **fields) -> None:
    emulator.control.mutate(
        {"op": "update", "object": "Contact", "id": record_id, "fields": fields}
    )


def live_rows_with_email(engine: sa.Engine, email: str, tenant: str = TENANT) -> list[str]:
    table = CANONICAL_TABLES["persons"]
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(table.c.external_id).where(
                    table.c.tenant_id == tenant, table.c.email == email, is_live(table)
                )
            ).scalars()
        )


def cursors(engine: sa.Engine, entity: Entity, tenant: str = TENANT) -> tuple:
    with engine.connect() as conn:
        return (
            get_cursor(conn, tenant, entity.name),
            get_cursor(conn, tenant, deleted_cursor_key(entity)),
        )


# -- email twins ---------------------------------------------------------------------------------


def test_twins_made_in_one_change_are_both_stored_and_the_larger_id_marked(
    emulator, client, engine
):
    sync_all(client, engine)
    a, b = clean_contacts(emulator, engine, 2)
    emulator.control.mutate(
        [
            {"op": "update", "object": "Contact", "id": a,
             "fields": {"Email": "Twin.Case@Example.com", "Title": "Newest"}},
            {"op": "update", "object": "Contact", "id": b,
             "fields": {"Email": "twin.case@example.COM", "Title": "Newest"}},
        ]
    )  # fmt: skip
    stats = sync_all(client, engine)
    assert stats["persons"].mode == "incremental"
    rows = rows_of(engine, PERSONS)
    assert (rows[a]["title"], rows[b]["title"]) == ("Newest", "Newest")
    assert rows[a]["email"] == rows[b]["email"] == "twin.case@example.com"
    assert (rows[a]["duplicate_of"], rows[b]["duplicate_of"]) == (None, a)
    assert live_rows_with_email(engine, "twin.case@example.com") == [a]
    assert_oracle(engine, emulator)


def test_twins_in_different_batches_end_the_same(emulator, client, engine):
    """One record a page and a batch: the larger id, stamped earlier, is loaded (and survives)
    alone first; the smaller one's batch hands the group over in its own transaction."""
    sync_all(client, engine)
    anchor, a, b = clean_contacts(emulator, engine, 3)
    cursor_now(engine, emulator, client, anchor)  # the next sync re-reads minutes, not history
    emulator.control.mutate(
        [
            {"op": "late_commit", "object": "Contact", "id": b, "age_seconds": 5,
             "fields": {"Email": "  SPLIT@example.com ", "Title": "Second"}},
            {"op": "update", "object": "Contact", "id": a,
             "fields": {"Email": "split@EXAMPLE.com", "Title": "First"}},
        ]
    )  # fmt: skip
    emulator.control.configure(page_size=1)
    pages: list[PageProgress] = []
    sync_all(client, engine, on_page=pages.append, load_batch_rows=1)
    batches = [p for p in pages if p.entity == "persons" and p.kind == "modified"]
    assert [p.rows for p in batches] == [1] * len(batches) and len(batches) >= 3
    truth = truth_of(emulator, "Contact")
    assert stamp_of(truth[b]) < stamp_of(truth[a]), "pages come in stamp order: b alone first"
    rows = rows_of(engine, PERSONS)
    assert (rows[a]["duplicate_of"], rows[b]["duplicate_of"]) == (None, a)
    assert (rows[a]["title"], rows[b]["title"]) == ("First", "Second")
    assert live_rows_with_email(engine, "split@example.com") == [a]
    assert_oracle(engine, emulator)


def test_a_deleted_survivor_hands_over_to_the_next_twin_in_the_same_sync(emulator, client, engine):
    sync_all(client, engine)
    a, b, c = clean_contacts(emulator, engine, 3)
    for record_id in (a, b, c):
        update(emulator, record_id, Email="three@twins.example")
    sync_all(client, engine)
    rows = rows_of(engine, PERSONS)
    assert [rows[i]["duplicate_of"] for i in (a, b, c)] == [None, a, a]

    emulator.control.mutate({"op": "delete", "object": "Contact", "id": a})
    sync_all(client, engine)
    rows = rows_of(engine, PERSONS)
    assert rows[a]["is_deleted"] and rows[a]["duplicate_of"] is None
    assert [rows[i]["duplicate_of"] for i in (b, c)] == [None, b]
    assert live_rows_with_email(engine, "three@twins.example") == [b]
    assert_oracle(engine, emulator)


def test_a_survivor_changing_its_email_hands_over(emulator, client, engine):
    sync_all(client, engine)
    a, b = clean_contacts(emulator, engine, 2)
    update(emulator, a, Email="pair@twins.example")
    update(emulator, b, Email="PAIR@twins.example")
    sync_all(client, engine)
    assert rows_of(engine, PERSONS)[b]["duplicate_of"] == a

    update(emulator, a, Email="moved.on@elsewhere.example")
    sync_all(client, engine)
    rows = rows_of(engine, PERSONS)
    assert (rows[a]["duplicate_of"], rows[b]["duplicate_of"]) == (None, None)
    assert live_rows_with_email(engine, "pair@twins.example") == [b]
    assert_oracle(engine, emulator)


# -- a first full sync marks twins once, at its end ----------------------------------------------


def marks_pending(engine: sa.Engine, tenant: str = TENANT) -> bool | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sync_state.c.twin_marks_pending).where(
                sync_state.c.tenant_id == tenant, sync_state.c.entity == "persons"
            )
        ).scalar()


def valid_contacts_in_truth(emulator: EmulatorHandle, n: int) -> list[str]:
    """Live, valid Contacts of the emulator, smallest ids first (before anything is stored)."""
    found = [
        i
        for i, r in sorted(truth_of(emulator, "Contact").items())
        if not r["IsDeleted"] and not r.get("_dirty") and isinstance(judged("persons", r), dict)
    ]
    assert len(found) >= n
    return found[:n]


def make_twins_before_the_first_sync(emulator: EmulatorHandle) -> list[str]:
    """Three valid Contacts sharing one email (in three spellings); their ids, smallest first."""
    ids = valid_contacts_in_truth(emulator, 3)
    for record_id, email in zip(ids, ("first@sync.example", "FIRST@sync.example",
                                      " first@SYNC.example"), strict=True):  # fmt: skip
        update(emulator, record_id, Email=email)
    return ids


def test_a_first_full_sync_marks_twins_once_at_its_end(emulator, client, engine):
    """Page by page the flag is set and nothing is marked; when the sync ends the twins are
    marked as a page-by-page sync would mark them, and the flag is cleared."""
    a, b, c = make_twins_before_the_first_sync(emulator)
    emulator.control.configure(page_size=7)
    seen: list[tuple[bool | None, int]] = []

    def during(progress: PageProgress) -> None:
        if progress.entity == "persons":
            marked = sum(r["duplicate_of"] is not None for r in rows_of(engine, PERSONS).values())
            seen.append((marks_pending(engine), marked))

    sync_all(client, engine, on_page=during, load_batch_rows=7)
    assert len(seen) >= 10 and set(seen) == {(True, 0)}
    assert marks_pending(engine) is False
    rows = rows_of(engine, PERSONS)
    assert [rows[i]["duplicate_of"] for i in (a, b, c)] == [None, a, a]
    assert live_rows_with_email(engine, "first@sync.example") == [a]
    assert_oracle(engine, emulator)


def test_an_interrupted_first_sync_leaves_the_marks_to_the_next_run(
    emulator, client, engine, monkeypatch
):
    """The first sync loads every page and dies before its one marking pass: the flag stays set
    and the twins unmarked. The next run re-reads none of them (their stamps are an hour old,
    before its lookback) and still marks them, because it finds the flag."""
    anchor, a, b, c = valid_contacts_in_truth(emulator, 4)
    for record_id, email in zip((a, b, c), ("late@twins.example", "LATE@twins.example",
                                            " late@TWINS.example"), strict=True):  # fmt: skip
        emulator.control.mutate({"op": "late_commit", "object": "Contact", "id": record_id,
                                 "age_seconds": 3600, "fields": {"Email": email}})  # fmt: skip
    update(emulator, anchor, Title="Anchor")  # the newest stamp: the rerun reads minutes, not hours
    settle = runner.settle_deferred_marks

    def killed(*_args, **_kwargs):
        raise RuntimeError("killed before the marking pass")

    monkeypatch.setattr(runner, "settle_deferred_marks", killed)
    with pytest.raises(RuntimeError, match="killed before the marking pass"):
        sync_all(client, engine)
    assert marks_pending(engine) is True
    rows = rows_of(engine, PERSONS)
    assert [rows[i]["duplicate_of"] for i in (a, b, c)] == [None, None, None]

    monkeypatch.setattr(runner, "settle_deferred_marks", settle)
    reread: list[PageProgress] = []
    stats = sync_all(client, engine, on_page=reread.append)
    assert stats["persons"].mode == "incremental"
    assert sum(p.rows for p in reread if p.entity == "persons" and p.kind == "modified") < 10
    assert marks_pending(engine) is False
    rows = rows_of(engine, PERSONS)
    assert [rows[i]["duplicate_of"] for i in (a, b, c)] == [None, a, a]
    assert_oracle(engine, emulator)


def test_a_first_full_sync_copies_its_new_rows_in_and_later_syncs_upsert(
    emulator, client, engine, monkeypatch
):
    """PostgreSQL: a first full sync sends the rows it has not written yet straight into their
    tables (records served twice go through the upsert); a later full sync upserts everything.
    The store equals Salesforce either way."""
    if engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL copies a first sync's rows in")
    from gtm_pipeline.store import upsert as upsert_module

    copied: list[str] = []
    copy_new_rows = upsert_module._copy_new_rows

    def spy(conn, batch, chosen):
        copied.extend(batch.rows.table.name for keep in chosen if keep)
        return copy_new_rows(conn, batch, chosen)

    monkeypatch.setattr(upsert_module, "_copy_new_rows", spy)
    sync_all(client, engine, load_batch_rows=7)
    assert {"accounts", "persons", "opportunities", "activities"} <= set(copied)
    assert_oracle(engine, emulator)
    copied.clear()
    update(emulator, valid_contacts_in_truth(emulator, 1)[0], Title="Changed")
    sync_all(client, engine, full=True, load_batch_rows=7)
    assert copied == []
    assert_oracle(engine, emulator)


def test_later_full_syncs_mark_twins_page_by_page(emulator, client, engine):
    sync_all(client, engine)
    a, b = clean_contacts(emulator, engine, 2)
    update(emulator, a, Email="later@full.example")
    update(emulator, b, Email="LATER@full.example")
    flags: list[bool | None] = []
    sync_all(client, engine, full=True, on_page=lambda p: flags.append(marks_pending(engine)))
    assert flags and set(flags) == {False}
    assert rows_of(engine, PERSONS)[b]["duplicate_of"] == a
    assert_oracle(engine, emulator)


@pytest.mark.parametrize(
    "dirt",
    [
        pytest.param({"LastName": None, "Email": None}, id="required"),
        pytest.param({"Title": "T" * 300}, id="too-long"),
    ],
)
def test_a_valid_record_turning_invalid_loses_its_row_and_gets_it_back(
    emulator, client, engine, dirt
):
    """Quarantined: no row left (a survivor hands its twins over); valid again: the row is
    back and the quarantine entry gone."""
    sync_all(client, engine)
    a, b = clean_contacts(emulator, engine, 2)
    update(emulator, a, Email="turning@twins.example")
    update(emulator, b, Email="turning@twins.example")
    sync_all(client, engine)

    update(emulator, a, **dirt)
    sync_all(client, engine)
    rows, failures = rows_of(engine, PERSONS), failures_of(engine)
    assert a not in rows
    stage = "required_fields" if "Email" in dirt else "type_coercion"
    assert ("persons", a, stage) in failures
    assert rows[b]["duplicate_of"] is None, "the twin took over from the quarantined survivor"
    assert_oracle(engine, emulator)

    update(emulator, a, LastName="Back", Email="turning@twins.example", Title="Fixed")
    sync_all(client, engine)
    rows, failures = rows_of(engine, PERSONS), failures_of(engine)
    assert rows[a]["last_name"] == "Back" and rows[a]["title"] == "Fixed"
    assert not [key for key in failures if key[1] == a]
    assert (rows[a]["duplicate_of"], rows[b]["duplicate_of"]) == (None, a)
    assert_oracle(engine, emulator)


# -- REST and Bulk -------------------------------------------------------------------------------


def test_rest_and_bulk_full_syncs_give_identical_stores(emulator, client, engine):
    """Every row of the three tables (duplicate_of included) and the quarantine without its
    timestamps and run ids; Bulk in several result sets, REST in small pages."""
    a, b, c, d = [
        r["Id"]
        for r in truth_of(emulator, "Contact").values()
        if not r.get("_dirty") and isinstance(judged("persons", r), dict)
    ][:4]
    emulator.control.mutate(
        [
            {"op": "update", "object": "Contact", "id": b, "fields": {"Email": "Both@Paths.io"}},
            {"op": "update", "object": "Contact", "id": a, "fields": {"Email": "both@paths.io"}},
            {"op": "update", "object": "Contact", "id": c, "fields": {"Title": "x" * 256}},
            {"op": "delete", "object": "Contact", "id": d},
        ]
    )
    emulator.control.configure(page_size=17)
    sync_all(client, engine, "rest", bulk_threshold=10**9, load_batch_rows=20)
    bulk = sync_all(client, engine, "bulk", bulk_threshold=0, bulk_max_records=25)
    assert all(s.extraction == "bulk" and s.bulk_fallback is None for s in bulk.values())
    by_rest, by_bulk = store_of(engine, "rest"), store_of(engine, "bulk")
    assert by_rest["persons"][max(a, b)]["duplicate_of"] == min(a, b)
    assert by_rest["quality_failures"], "the org's dirt reached no gate"
    assert store_differences(by_bulk, by_rest) == []  # readable first, then every column:
    for table in by_rest:
        assert by_bulk[table] == by_rest[table], table
    for tenant in ("rest", "bulk"):
        counts = assert_oracle(engine, emulator, tenant)
        assert counts["persons"]["twins"] >= 2  # the generated duplicate emails and a/b


def test_rest_and_bulk_store_text_holding_nul_alike_without_it(emulator, client, engine):
    """Salesforce text may hold NUL characters (seen in real Bulk results). PostgreSQL keeps
    none in text or JSONB, so both paths remove them: the same row either way, loaded or
    quarantined, and text that only reads `\\u0000` is kept as it is."""
    kept, held = [
        r["Id"]
        for r in truth_of(emulator, "Contact").values()
        if not r.get("_dirty") and isinstance(judged("persons", r), dict)
    ][:2]
    emulator.control.mutate(
        [
            {"op": "update", "object": "Contact", "id": kept,
             "fields": {"Title": "Head\x00 of\x00 Sales", "Phone": "555\\u0000"}},
            {"op": "update", "object": "Contact", "id": held,
             "fields": {"Title": "\x00" + "t" * 256}},
        ]
    )  # fmt: skip
    sync_all(client, engine, "rest", bulk_threshold=10**9)
    sync_all(client, engine, "bulk", bulk_threshold=0, bulk_max_records=25)
    by_rest, by_bulk = store_of(engine, "rest"), store_of(engine, "bulk")
    assert store_differences(by_bulk, by_rest) == []
    for table in by_rest:
        assert by_bulk[table] == by_rest[table], table
    row = by_rest["persons"][kept]
    assert (row["title"], row["phone"]) == ("Head of Sales", "555\\u0000")
    assert by_rest["quality_failures"][("persons", held, "type_coercion")]["raw"]["title"] == (
        "t" * 256
    )
    for tenant in ("rest", "bulk"):
        assert_oracle(engine, emulator, tenant)


# -- reconciliation ------------------------------------------------------------------------------


def cursor_now(
    engine: sa.Engine, emulator: EmulatorHandle, client: SalesforceClient, anchor: str
) -> None:
    """Touch `anchor` and sync, so the cursor is at "now", as a live org's would be. (A late
    commit must not go to the anchor: Salesforce never stamps a record's next version older.)"""
    update(emulator, anchor, Title="Anchor")
    sync_all(client, engine)


def make_every_drift(emulator: EmulatorHandle, engine: sa.Engine, client) -> dict[str, str]:
    """One Contact of each drift class, none of which an incremental sync sees:
    missing (a late insert beyond the lookback), stale (a late update beyond it), a ghost in the
    recycle bin and a purged one (both deleted with the deletion cursor moved past them), and a
    wrongly deleted record (undeleted with both cursors moved past it)."""
    sync_all(client, engine)
    anchor, stale, binned, purged, undeleted = clean_contacts(emulator, engine, 5)
    emulator.control.mutate({"op": "delete", "object": "Contact", "id": undeleted})
    cursor_now(engine, emulator, client, anchor)
    assert rows_of(engine, PERSONS)[undeleted]["is_deleted"]
    (missing,) = [
        r["id"]
        for r in emulator.control.mutate(
            [
                {"op": "late_commit", "object": "Contact", "age_seconds": 1800,
                 "fields": {"LastName": "Missing", "Email": "missing@drift.example"}},
                {"op": "late_commit", "object": "Contact", "id": stale, "age_seconds": 1800,
                 "fields": {"LastName": "Stale"}},
                {"op": "delete", "object": "Contact", "id": binned},
                {"op": "delete", "object": "Contact", "id": purged},
                {"op": "purge", "object": "Contact", "id": purged},
                {"op": "undelete", "object": "Contact", "id": undeleted},
            ]
        )
        if r["op"] == "late_commit" and r["created"]
    ]  # fmt: skip
    ahead = Cursor(datetime.now(UTC) + timedelta(hours=1), "003zzzzzzzzzzzzzzz")
    with engine.begin() as conn:
        save_cursor(conn, TENANT, PERSONS.name, ahead, "incremental")
        save_cursor(conn, TENANT, deleted_cursor_key(PERSONS), ahead, "incremental")
    sync_all(client, engine)
    rows = rows_of(engine, PERSONS)
    assert missing not in rows and rows[stale]["last_name"] != "Stale"
    assert not rows[binned]["is_deleted"] and not rows[purged]["is_deleted"]
    assert rows[undeleted]["is_deleted"]
    return {"missing": missing, "stale": stale, "binned": binned, "purged": purged,
            "undeleted": undeleted}  # fmt: skip


def test_reconciliation_counts_every_drift_class_and_repairs_it_without_moving_the_cursor(
    emulator, client, engine
):
    ids = make_every_drift(emulator, engine, client)
    with pytest.raises(AssertionError):
        reconcile(engine, TENANT, emulator, PERSONS)
    before = cursors(engine, PERSONS)

    result = reconcile_entity(client, engine, TENANT, PERSONS)
    counts = result.before
    assert (counts.missing, counts.stale, counts.ghosts, counts.purged, counts.wrongly_deleted) == (
        1, 1, 2, 1, 1
    )  # fmt: skip
    assert result.after.total == 0 and result.outcome == "repaired"
    assert result.records_reread == 3 and result.records_flagged_deleted == 2
    assert cursors(engine, PERSONS) == before, "reconciliation never moves a cursor"
    rows = rows_of(engine, PERSONS)
    assert rows[ids["missing"]]["last_name"] == "Missing"
    assert rows[ids["stale"]]["last_name"] == "Stale"
    assert (rows[ids["binned"]]["is_deleted"], rows[ids["binned"]]["deleted_reason"]) == (
        True, "deleted"
    )  # fmt: skip
    assert (rows[ids["purged"]]["is_deleted"], rows[ids["purged"]]["deleted_reason"]) == (
        True, "purged"
    )  # fmt: skip
    assert not rows[ids["undeleted"]]["is_deleted"]
    assert rows[ids["undeleted"]]["deleted_reason"] is None
    assert_oracle(engine, emulator)
    again = reconcile_entity(client, engine, TENANT, PERSONS)
    assert (again.before.total, again.outcome) == (0, "clean")


def test_a_dry_run_reports_the_counts_and_repairs_nothing(emulator, client, engine):
    make_every_drift(emulator, engine, client)
    store, before = store_of(engine, TENANT), cursors(engine, PERSONS)
    calls = client.calls_made
    result = reconcile_entity(client, engine, TENANT, PERSONS, dry_run=True)
    assert result.outcome == "found" and result.dry_run
    assert (result.before.total, result.before.purged) == (5, 1)
    assert result.after == result.before
    assert (result.records_reread, result.records_flagged_deleted) == (0, 0)
    assert result.api_calls == client.calls_made - calls == 1, "the listing only"
    assert store_of(engine, TENANT) == store
    assert cursors(engine, PERSONS) == before


def test_a_purged_survivor_is_flagged_and_its_twin_promoted(emulator, client, engine):
    sync_all(client, engine)
    a, b = clean_contacts(emulator, engine, 2)
    update(emulator, a, Email="gone@twins.example")
    update(emulator, b, Email="gone@twins.example")
    sync_all(client, engine)
    emulator.control.mutate(
        [
            {"op": "delete", "object": "Contact", "id": a},
            {"op": "purge", "object": "Contact", "id": a},
        ]
    )
    sync_all(client, engine)
    assert not rows_of(engine, PERSONS)[a]["is_deleted"], "nothing Salesforce serves shows it"

    result = reconcile_entity(client, engine, TENANT, PERSONS)
    assert (result.before.ghosts, result.before.purged, result.outcome) == (1, 1, "repaired")
    rows = rows_of(engine, PERSONS)
    assert (rows[a]["is_deleted"], rows[a]["deleted_reason"]) == (True, "purged")
    assert (rows[a]["duplicate_of"], rows[b]["duplicate_of"]) == (None, None)
    assert_oracle(engine, emulator)


def test_a_commit_beyond_the_lookback_is_repaired_by_reconciliation(emulator, client, engine):
    sync_all(client, engine)
    anchor, late = clean_contacts(emulator, engine, 2)
    cursor_now(engine, emulator, client, anchor)
    emulator.control.mutate(
        {"op": "late_commit", "object": "Contact", "id": late, "age_seconds": 1200,
         "fields": {"Title": "Committed late"}}
    )  # fmt: skip
    sync_all(client, engine)
    assert rows_of(engine, PERSONS)[late]["title"] != "Committed late"
    before = cursors(engine, PERSONS)

    result = reconcile_entity(client, engine, TENANT, PERSONS)
    assert (result.before.stale, result.records_reread, result.outcome) == (1, 1, "repaired")
    assert rows_of(engine, PERSONS)[late]["title"] == "Committed late"
    assert cursors(engine, PERSONS) == before
    assert_oracle(engine, emulator)


@pytest.mark.parametrize("listing", ["rest", "bulk"])
def test_a_budget_stop_leaves_drift_remains(emulator, engine, listing):
    """The listing is read, then the API budget runs out before the stale record is re-read:
    the ghost is still flagged (no call needed), the outcome says drift remains, and a later
    reconciliation with budget repairs the rest."""
    client = client_for(emulator, usage_guard_share=1.0)
    sync_all(client, engine)
    stale, binned = clean_contacts(emulator, engine, 2)
    update(emulator, stale, Title="Changed")
    emulator.control.mutate({"op": "delete", "object": "Contact", "id": binned})
    options = ReconcileOptions(bulk_threshold=0 if listing == "bulk" else 10**9,
                               bulk_poll=FAST_POLL)  # fmt: skip
    listing_calls = reconcile_entity(client, engine, TENANT, PERSONS, dry_run=True,
                                     options=options).api_calls  # fmt: skip
    used = emulator.control.stats()["api_usage"]["used"]
    emulator.control.configure(daily_api_limit=used + listing_calls)

    result = reconcile_entity(client, engine, TENANT, PERSONS, options=options)
    assert result.listing == listing
    assert (result.before.stale, result.before.ghosts) == (1, 1)
    assert result.stopped and result.outcome == "drift_remains"
    assert (result.after.stale, result.after.ghosts) == (1, 0)
    assert rows_of(engine, PERSONS)[binned]["is_deleted"]

    emulator.control.configure(reset_usage=True, daily_api_limit=15000)
    retry = reconcile_entity(client_for(emulator), engine, TENANT, PERSONS, options=options)
    assert (retry.before.stale, retry.outcome) == (1, "repaired")
    assert_oracle(engine, emulator)
