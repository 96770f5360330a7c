"""Loading pages (on SQLite and PostgreSQL): rows, quarantine and cursor move in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from gtm_pipeline.store import CANONICAL_TABLES, Cursor, get_cursor
from gtm_pipeline.store.quarantine import failures_for, live_row_count
from gtm_pipeline.store.tables import is_live
from gtm_pipeline.sync.entities import ACCOUNTS, PERSONS, Entity
from gtm_pipeline.sync.load import (
    convert_page,
    deleted_cursor_key,
    load_deletions,
    load_page,
    page_cursor,
)
from gtm_pipeline.sync.prepare import gate_page
from gtm_pipeline.sync.quality import REQUIRED, TYPE_COERCION
from gtm_pipeline.sync.transform import to_canonical

TENANT = "acme"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
RUN_AT = datetime(2025, 1, 1, tzinfo=UTC)


def sf_stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def contact(cid: str, email: str | None, at: datetime, **fields) -> dict:
    return {
        "Id": cid,
        "Email": email,
        "FirstName": fields.get("FirstName"),
        "LastName": fields.get("LastName"),
        "Title": fields.get("Title"),
        "Phone": None,
        "AccountId": None,
        "SystemModstamp": sf_stamp(at),
    }


def load(
    engine: sa.Engine,
    records: list[dict] | pd.DataFrame,
    *,
    now: datetime = RUN_AT,
    fail: bool = False,
    entity: Entity = PERSONS,
):
    """Transform, gate and load one page (of contacts by default) in one transaction; `fail`
    rolls it back."""
    page = convert_page(
        engine.dialect, TENANT, entity, gate_page(entity, pd.DataFrame(records)), now
    )

    class Boom(Exception):
        pass

    try:
        with engine.begin() as conn:
            loaded = load_page(
                conn,
                tenant_id=TENANT,
                entity=entity,
                page=page,
                mode="full",
                run_id="run-1",
                now=now,
                stats={"pages": 1},
            )
            if fail:
                raise Boom
    except Boom:
        return None
    return loaded


def stored(engine: sa.Engine) -> dict[str, sa.Row]:
    table = CANONICAL_TABLES["persons"]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c.tenant_id == TENANT))
        return {r.external_id: r for r in rows}


def quarantine(engine: sa.Engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {f["external_id"]: f for f in failures_for(conn, TENANT, "persons")}


def cursor(engine: sa.Engine, key: str = "persons") -> Cursor | None:
    with engine.connect() as conn:
        return get_cursor(conn, TENANT, key)


def test_a_page_stores_clean_rows_quarantines_the_rest_and_sets_the_cursor(engine):
    loaded = load(
        engine,
        [
            contact("003A00000000000AAA", "A@x.io", T0),
            contact("003B00000000000AAA", None, T0 + timedelta(seconds=5)),  # no email, no name
            contact("003C00000000000AAA", "c@x.io", T0 + timedelta(seconds=5)),
        ],
    )
    assert loaded.loaded == 2
    assert loaded.cursor == Cursor(T0 + timedelta(seconds=5), "003C00000000000AAA")
    assert cursor(engine) == loaded.cursor
    rows = stored(engine)
    assert set(rows) == {"003A00000000000AAA", "003C00000000000AAA"}
    assert (
        rows["003A00000000000AAA"].email == "a@x.io"
        and rows["003A00000000000AAA"].system_modstamp == T0
    )
    assert (
        rows["003A00000000000AAA"].synced_at == RUN_AT and not rows["003A00000000000AAA"].is_deleted
    )
    failure = quarantine(engine)["003B00000000000AAA"]
    assert failure["stage"] == REQUIRED and failure["run_id"] == "run-1"
    assert failure["raw"]["external_id"] == "003B00000000000AAA" and failure["raw"]["email"] is None


def test_the_cursor_covers_rejected_rows_too_so_they_are_not_read_forever(engine):
    loaded = load(
        engine,
        [
            contact("003A00000000000AAA", "a@x.io", T0),
            contact("003Z00000000000AAA", None, T0 + timedelta(1)),
        ],
    )
    assert loaded.cursor == Cursor(T0 + timedelta(1), "003Z00000000000AAA")


def test_the_cursor_never_moves_back(engine):
    load(engine, [contact("003M00000000000AAA", "m@x.io", T0 + timedelta(hours=1))])
    high = cursor(engine)
    older = load(
        engine,
        [contact("003A00000000000AAA", "a@x.io", T0), contact("003Z00000000000AAA", "z@x.io", T0)],
    )
    assert older.cursor == high and cursor(engine) == high
    same_stamp_lower_id = load(
        engine, [contact("003B00000000000AAA", "b@x.io", T0 + timedelta(hours=1))]
    )
    assert same_stamp_lower_id.cursor == high
    higher_id = load(engine, [contact("003N00000000000AAA", "n@x.io", T0 + timedelta(hours=1))])
    assert higher_id.cursor == Cursor(T0 + timedelta(hours=1), "003N00000000000AAA")
    assert set(stored(engine)) == {
        "003M00000000000AAA",
        "003A00000000000AAA",
        "003Z00000000000AAA",
        "003B00000000000AAA",
        "003N00000000000AAA",
    }


def test_page_cursor_orders_by_stamp_then_id():
    frame = to_canonical(
        PERSONS,
        pd.DataFrame(
            [
                contact("003Z00000000000AAA", "z@x.io", T0),
                contact("003B00000000000AAA", "b@x.io", T0 + timedelta(seconds=1)),
                contact("003A00000000000AAA", "a@x.io", T0 + timedelta(seconds=1)),
            ]
        ),
    )
    assert page_cursor(frame) == Cursor(T0 + timedelta(seconds=1), "003B00000000000AAA")
    assert page_cursor(frame.iloc[0:0]) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, 5)),
            st.one_of(st.none(), st.sampled_from(["003A", "003B", "003b", "003C", "003É"])),
        ),
        max_size=12,
    )
)
def test_page_cursor_is_the_last_key_in_stamp_then_id_order(rows):
    frame = pd.DataFrame(
        {
            "system_modstamp": pd.to_datetime(
                [None if s is None else T0 + timedelta(seconds=s) for s, _ in rows], utc=True
            ),
            "external_id": pd.array([i for _, i in rows], dtype="string[pyarrow]"),
        }
    )
    keyed = sorted((s, i) for s, i in rows if s is not None and i is not None)
    expected = None if not keyed else Cursor(T0 + timedelta(seconds=keyed[-1][0]), keyed[-1][1])
    assert page_cursor(frame) == expected


def test_an_older_version_read_late_never_overwrites_a_newer_one(engine):
    load(engine, [contact("003A00000000000AAA", "new@x.io", T0 + timedelta(minutes=5))])
    assert load(engine, [contact("003A00000000000AAA", "old@x.io", T0)]).loaded == 0
    assert stored(engine)["003A00000000000AAA"].email == "new@x.io"
    again = load(engine, [contact("003A00000000000AAA", "new@x.io", T0 + timedelta(minutes=5))])
    assert again.loaded == 1  # the re-read overlap rewrites identical data, harmlessly


def test_a_rolled_back_page_leaves_rows_quarantine_and_cursor_unchanged(engine):
    load(
        engine,
        [contact("003A00000000000AAA", "a@x.io", T0), contact("003Q00000000000AAA", None, T0)],
    )
    before = (stored(engine), quarantine(engine), cursor(engine))
    result = load(
        engine,
        [
            contact("003A00000000000AAA", "changed@x.io", T0 + timedelta(hours=2)),
            contact(
                "003Q00000000000AAA", "fixed@x.io", T0 + timedelta(hours=2)
            ),  # would leave quarantine
            contact("003R00000000000AAA", None, T0 + timedelta(hours=2)),  # would enter it
            contact("003S00000000000AAA", "s@x.io", T0 + timedelta(hours=3)),
        ],
        fail=True,
    )
    assert result is None
    after = (stored(engine), quarantine(engine), cursor(engine))
    assert {k: tuple(v) for k, v in after[0].items()} == {k: tuple(v) for k, v in before[0].items()}
    assert after[1] == before[1] and after[2] == before[2]
    assert set(after[1]) == {"003Q00000000000AAA"}


def test_quarantine_keeps_first_seen_and_releases_a_record_that_passes_later(engine):
    first, second, third = RUN_AT, RUN_AT + timedelta(hours=1), RUN_AT + timedelta(hours=2)
    load(engine, [contact("003Q00000000000AAA", None, T0)], now=first)
    load(engine, [contact("003Q00000000000AAA", None, T0 + timedelta(seconds=1))], now=second)
    entry = quarantine(engine)["003Q00000000000AAA"]
    assert entry["first_seen_at"] == first and entry["last_seen_at"] == second
    assert "003Q00000000000AAA" not in stored(engine)
    load(engine, [contact("003Q00000000000AAA", "q@x.io", T0 + timedelta(seconds=2))], now=third)
    assert quarantine(engine) == {}
    assert stored(engine)["003Q00000000000AAA"].email == "q@x.io"


def test_a_different_failure_stage_starts_its_own_first_seen(engine):
    load(engine, [contact("003Q00000000000AAA", None, T0)], now=RUN_AT)
    later = RUN_AT + timedelta(days=1)
    too_long = contact("003Q00000000000AAA", "q@x.io", T0 + timedelta(seconds=1), Title="x" * 300)
    load(engine, [too_long], now=later)
    entry = quarantine(engine)["003Q00000000000AAA"]
    assert entry["stage"] == TYPE_COERCION and entry["first_seen_at"] == later
    assert entry["reason"] == "title: text longer than 255 characters (300)"


def test_a_record_that_fails_loses_its_earlier_stored_row(engine):
    load(engine, [contact("003A00000000000AAA", "a@x.io", T0, FirstName="Ada")])
    failing = contact("003A00000000000AAA", None, T0 + timedelta(seconds=1))  # no email, no name
    load(engine, [failing], now=RUN_AT + timedelta(hours=1))
    assert "003A00000000000AAA" not in stored(engine)
    entry = quarantine(engine)["003A00000000000AAA"]
    assert entry["stage"] == REQUIRED and entry["system_modstamp"] == T0 + timedelta(seconds=1)
    assert entry["raw"]["email"] is None and entry["raw"]["first_name"] is None


def test_an_older_failing_version_read_late_leaves_the_newer_row(engine):
    load(engine, [contact("003A00000000000AAA", "a@x.io", T0 + timedelta(minutes=5))])
    load(engine, [contact("003A00000000000AAA", None, T0)], now=RUN_AT + timedelta(hours=1))
    assert stored(engine)["003A00000000000AAA"].email == "a@x.io"


def marks(engine: sa.Engine) -> dict[str, str | None]:
    return {i: r.duplicate_of for i, r in stored(engine).items() if not r.is_deleted}


def live(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        table = CANONICAL_TABLES["persons"]
        query = sa.select(table.c.external_id).where(table.c.tenant_id == TENANT, is_live(table))
        return set(conn.execute(query).scalars())


def test_email_twins_are_both_stored_and_the_larger_id_is_marked(engine):
    loaded = load(
        engine,
        [
            contact("003W00000000000AAA", "dup@x.io", T0 + timedelta(seconds=2), Title="newer"),
            contact("003Q00000000000AAA", " DUP@x.io ", T0 + timedelta(seconds=1), Title="older"),
            contact("003S00000000000AAA", "solo@x.io", T0),
        ],
    )
    assert loaded.loaded == 3 and quarantine(engine) == {}
    rows = stored(engine)
    assert (
        rows["003W00000000000AAA"].title == "newer" and rows["003Q00000000000AAA"].title == "older"
    )
    assert marks(engine) == {
        "003Q00000000000AAA": None,  # the smallest id survives, whichever is newer
        "003W00000000000AAA": "003Q00000000000AAA",
        "003S00000000000AAA": None,
    }
    assert live(engine) == {"003Q00000000000AAA", "003S00000000000AAA"}
    with engine.connect() as conn:
        assert live_row_count(conn, TENANT, "persons") == 2


def test_twin_marks_do_not_depend_on_pages_or_their_order(engine):
    ids = [f"003{c}00000000000AAA" for c in "QBZA"]
    pages = [[ids[2]], [ids[0], ids[3]], [ids[1]]]  # the survivor arrives in the middle
    for page in pages:
        load(engine, [contact(i, "shared@x.io", T0) for i in page])
    survivor = "003A00000000000AAA"
    assert marks(engine) == {i: None if i == survivor else survivor for i in ids}


def test_the_next_twin_takes_over_when_the_survivor_goes(engine):
    a, b, c = (f"003{x}00000000000AAA" for x in "ABC")
    load(engine, [contact(i, "shared@x.io", T0) for i in (a, b, c)])
    load_deleted(engine, deletions((a, T0 + timedelta(seconds=1))))
    assert marks(engine) == {b: None, c: b}
    assert stored(engine)[a].duplicate_of is None and stored(engine)[a].deleted_reason == "deleted"
    load(engine, [contact(b, None, T0 + timedelta(seconds=2))])  # b fails: its row goes
    assert marks(engine) == {c: None}
    load(engine, [contact(b, "shared@x.io", T0 + timedelta(seconds=3))])  # b passes again
    assert marks(engine) == {b: None, c: b}
    load(engine, [contact(b, "other@x.io", T0 + timedelta(seconds=4))])  # b changes its email
    assert marks(engine) == {b: None, c: None}


def test_quarantine_of_records_not_on_the_page_is_left_alone(engine):
    load(engine, [contact("003Q00000000000AAA", None, T0)])
    load(engine, [contact("003A00000000000AAA", "a@x.io", T0 + timedelta(seconds=1))])
    assert set(quarantine(engine)) == {"003Q00000000000AAA"}


def deletions(*pairs: tuple[str, datetime]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Id": [i for i, _ in pairs],
            "SystemModstamp": [sf_stamp(t) for _, t in pairs],
            "IsDeleted": [True] * len(pairs),
        }
    )


def load_deleted(engine: sa.Engine, frame: pd.DataFrame):
    with engine.begin() as conn:
        return load_deletions(
            conn, tenant_id=TENANT, entity=PERSONS, deleted=frame, mode="incremental", now=RUN_AT
        )


def test_deletions_flag_rows_keep_their_values_and_use_their_own_cursor(engine):
    load(
        engine,
        [
            contact("003A00000000000AAA", "a@x.io", T0, FirstName="Ada"),
            contact("003B00000000000AAA", "b@x.io", T0),
        ],
    )
    persons_cursor = cursor(engine)
    gone = T0 + timedelta(days=1)
    loaded = load_deleted(
        engine, deletions(("003A00000000000AAA", gone), ("003X00000000000AAA", gone))
    )
    assert loaded.loaded == 2 and loaded.cursor == Cursor(gone, "003X00000000000AAA")
    rows = stored(engine)
    assert rows["003A00000000000AAA"].is_deleted and rows["003A00000000000AAA"].deleted_at == gone
    assert (
        rows["003A00000000000AAA"].first_name == "Ada"
        and rows["003A00000000000AAA"].email == "a@x.io"
    )
    assert rows["003X00000000000AAA"].is_deleted  # never seen live: kept as a tombstone
    assert not rows["003B00000000000AAA"].is_deleted
    assert cursor(engine, deleted_cursor_key(PERSONS)) == Cursor(gone, "003X00000000000AAA")
    assert cursor(engine) == persons_cursor


def test_a_stale_deletion_does_not_bury_a_newer_live_version(engine):
    load(engine, [contact("003A00000000000AAA", "a@x.io", T0 + timedelta(hours=1))])
    assert load_deleted(engine, deletions(("003A00000000000AAA", T0))).loaded == 0
    assert not stored(engine)["003A00000000000AAA"].is_deleted


def test_an_undelete_read_later_brings_the_row_back_live(engine):
    load_deleted(engine, deletions(("003A00000000000AAA", T0)))
    load(engine, [contact("003A00000000000AAA", "a@x.io", T0 + timedelta(seconds=1))])
    row = stored(engine)["003A00000000000AAA"]
    assert not row.is_deleted and row.deleted_at is None and row.email == "a@x.io"


def test_an_empty_deletion_page_changes_nothing(engine):
    empty = deletions()
    assert load_deleted(engine, empty).loaded == 0
    assert cursor(engine, deleted_cursor_key(PERSONS)) is None


def test_a_naive_run_time_is_refused(engine):
    naive = datetime(2025, 1, 1)  # noqa: DTZ001
    with pytest.raises(ValueError, match="naive"):
        load(engine, [contact("003A00000000000AAA", "a@x.io", T0)], now=naive)
    assert stored(engine) == {} and cursor(engine) is None


def test_a_record_without_an_id_can_be_rejected_again_on_a_later_run(engine):
    load(engine, [contact(None, "a@x.io", T0)], now=RUN_AT)
    load(engine, [contact(None, "a@x.io", T0)], now=RUN_AT + timedelta(hours=1))
    entries = quarantine(engine)
    assert list(entries) == ["(no id, row 0)"]
    assert entries["(no id, row 0)"]["last_seen_at"] == RUN_AT + timedelta(hours=1)


def test_a_record_served_twice_on_one_page_and_rejected_twice_is_quarantined_once(engine):
    loaded = load(
        engine, [contact("003Q00000000000AAA", None, T0), contact("003Q00000000000AAA", None, T0)]
    )
    assert loaded.loaded == 0
    assert list(quarantine(engine)) == ["003Q00000000000AAA"]


def test_a_record_deleted_in_salesforce_leaves_the_quarantine(engine):
    load(
        engine,
        [
            contact("003B00000000000AAA", None, T0),  # quarantined: no email, no name
            contact("003D00000000000AAA", None, T0),
        ],
    )
    assert set(quarantine(engine)) == {"003B00000000000AAA", "003D00000000000AAA"}
    gone = pd.DataFrame(
        {"Id": ["003B00000000000AAA"], "SystemModstamp": [sf_stamp(T0 + timedelta(minutes=1))]}
    )
    with engine.begin() as conn:
        load_deletions(
            conn, tenant_id=TENANT, entity=PERSONS, deleted=gone, mode="full", now=RUN_AT
        )
    assert set(quarantine(engine)) == {"003D00000000000AAA"}


@pytest.mark.parametrize("infinite", [float("inf"), float("-inf"), np.float32("inf")])
def test_a_number_too_large_for_a_double_is_quarantined_and_its_page_still_loads(engine, infinite):
    """A Bulk CSV number such as 1e999 reads as infinity, which no JSON holds: the quarantine
    keeps it as text, and the page's other records load (on both databases)."""
    accounts = pd.DataFrame(
        {
            "Id": ["001A00000000000AAA", "001B00000000000AAA"],
            "Name": ["Acme", "Globex"],
            "Website": [None, None],
            "Industry": [None, None],
            "NumberOfEmployees": [10, 20],
            "AnnualRevenue": [infinite, 5.0],
            "SystemModstamp": [sf_stamp(T0), sf_stamp(T0)],
        }
    )
    loaded = load(engine, accounts, entity=ACCOUNTS)
    with engine.connect() as conn:
        entries = failures_for(conn, TENANT, "accounts")
    assert loaded.loaded == 1
    assert [(e["external_id"], e["field"]) for e in entries] == [
        ("001A00000000000AAA", "annual_revenue")
    ]
    assert entries[0]["raw"]["annual_revenue"] == str(float(infinite))
