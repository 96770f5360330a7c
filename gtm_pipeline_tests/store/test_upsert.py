"""Bulk upserts on both databases: versions ordered by system_modstamp, types, tenants, batches."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.postgresql.psycopg import dialect as postgresql_dialect
from sqlalchemy.dialects.sqlite.pysqlite import dialect as sqlite_dialect

from gtm_pipeline.store import (
    InvalidRowsError,
    accounts,
    opportunities,
    persons,
    prepare_upsert,
    scores,
    upsert_records,
    write_upsert,
)
from gtm_pipeline.store.errors import StoreError
from gtm_pipeline.store.rows import aware_datetimes
from gtm_pipeline.store.written_keys import WrittenKeys
from gtm_pipeline_tests.support.store import T0


def person(external_id: str, modstamp: datetime, tenant: str = "t1", **fields: Any) -> dict:
    return {"tenant_id": tenant, "external_id": external_id, "system_modstamp": modstamp, **fields}


def upsert(engine: sa.Engine, table: sa.Table, rows: Any) -> int:
    with engine.begin() as conn:
        return upsert_records(conn, table, rows)


def stored(engine: sa.Engine, table: sa.Table, tenant: str = "t1") -> dict[str, Any]:
    with engine.connect() as conn:
        result = conn.execute(
            sa.select(table).where(table.c.tenant_id == tenant).order_by(table.c.external_id)
        )
        return {row.external_id: row for row in result}


def test_insert_then_update(engine: sa.Engine) -> None:
    inserted = upsert(
        engine,
        persons,
        [person("003A", T0, email="a@x.io"), person("003B", T0, email="b@x.io")],
    )
    updated = upsert(engine, persons, [person("003A", T0 + timedelta(seconds=1), email="new@x.io")])
    rows = stored(engine, persons)
    assert (inserted, updated) == (2, 1)
    assert rows["003A"].email == "new@x.io"
    assert rows["003A"].system_modstamp == T0 + timedelta(seconds=1)
    assert rows["003B"].email == "b@x.io"


def test_older_version_is_ignored(engine: sa.Engine) -> None:
    upsert(engine, persons, [person("003A", T0, email="current@x.io")])
    applied = upsert(engine, persons, [person("003A", T0 - timedelta(hours=1), email="stale@x.io")])
    row = stored(engine, persons)["003A"]
    assert applied == 0
    assert row.email == "current@x.io"
    assert row.system_modstamp == T0


def test_equal_modstamp_is_applied(engine: sa.Engine) -> None:
    """Re-reading the lookback overlap must be able to deliver a same-stamp late commit."""
    upsert(engine, persons, [person("003A", T0, email="first@x.io")])
    applied = upsert(engine, persons, [person("003A", T0, email="same-stamp@x.io")])
    assert applied == 1
    assert stored(engine, persons)["003A"].email == "same-stamp@x.io"


def test_mixed_batch_counts_only_applied_rows(engine: sa.Engine) -> None:
    upsert(engine, persons, [person("003A", T0), person("003B", T0)])
    applied = upsert(
        engine,
        persons,
        [
            person("003A", T0 - timedelta(seconds=1), email="stale"),
            person("003B", T0 + timedelta(seconds=1), email="newer"),
            person("003C", T0, email="brand new"),
        ],
    )
    rows = stored(engine, persons)
    assert applied == 2
    assert (rows["003A"].email, rows["003B"].email, rows["003C"].email) == (
        None,
        "newer",
        "brand new",
    )


def test_duplicates_in_one_batch_keep_the_newest_then_the_last(engine: sa.Engine) -> None:
    batch = pd.DataFrame(
        [
            person("003A", T0 + timedelta(seconds=5), email="newest"),
            person("003A", T0, email="older, later in batch"),
            person("003B", T0, email="tie, first"),
            person("003B", T0, email="tie, last"),
            person("003C", T0, email="only"),
        ]
    )
    applied = upsert(engine, persons, batch)
    rows = stored(engine, persons)
    assert applied == 3
    assert rows["003A"].email == "newest"
    assert rows["003B"].email == "tie, last"
    assert rows["003C"].email == "only"
    # The frame's timestamp column is bound from its instants: they follow the kept rows.
    assert isinstance(batch["system_modstamp"].dtype, pd.DatetimeTZDtype)
    assert rows["003A"].system_modstamp == T0 + timedelta(seconds=5)
    assert rows["003C"].system_modstamp == T0


def test_missing_values_become_null(engine: sa.Engine) -> None:
    frame = pd.DataFrame(
        {
            "tenant_id": ["t1", "t1", "t1"],
            "external_id": ["001A", "001B", "001C"],
            "name": ["Acme", None, np.nan],
            "employee_count": [10, None, np.nan],
            "annual_revenue": [np.nan, 1.5e6, None],
            "system_modstamp": pd.to_datetime([T0, T0, T0], utc=True),
            "deleted_at": pd.to_datetime([None, T0, None], utc=True),
            "custom_fields": [None, np.nan, {"Tier__c": "A"}],
        }
    )
    assert upsert(engine, accounts, frame) == 3
    rows = stored(engine, accounts)
    assert rows["001A"].name == "Acme"
    assert rows["001A"].employee_count == 10
    assert isinstance(rows["001A"].employee_count, int)
    assert rows["001A"].annual_revenue is None
    assert rows["001A"].deleted_at is None
    assert rows["001A"].custom_fields is None
    assert rows["001B"].name is None
    assert rows["001B"].employee_count is None
    assert rows["001B"].annual_revenue == 1.5e6
    assert rows["001B"].deleted_at == T0
    assert rows["001B"].custom_fields is None
    assert rows["001C"].custom_fields == {"Tier__c": "A"}
    with engine.connect() as conn:
        null_json = conn.execute(
            sa.select(sa.func.count()).where(accounts.c.custom_fields.is_(None))
        ).scalar_one()
    assert null_json == 2, "missing JSON must be SQL NULL, not the JSON literal null"


def test_json_round_trip(engine: sa.Engine) -> None:
    custom = {
        "Region__c": "EMEA",
        "Score__c": 81.5,
        "Tags__c": ["a", "b"],
        "Nested__c": {"deep": [1, {"x": None}]},
        "Unicode__c": "Zoë — 東京",
        "Flag__c": True,
    }
    upsert(engine, persons, [person("003A", T0, custom_fields=custom)])
    assert stored(engine, persons)["003A"].custom_fields == custom


def test_timestamps_round_trip_as_aware_utc(engine: sa.Engine) -> None:
    plus_five = timezone(timedelta(hours=5, minutes=30))
    local = datetime(2024, 3, 1, 17, 30, 0, 123456, tzinfo=plus_five)
    upsert(engine, persons, [person("003A", local, deleted_at=local, is_deleted=True)])
    row = stored(engine, persons)["003A"]
    assert row.system_modstamp == local
    assert row.system_modstamp.utcoffset() == timedelta(0)
    assert row.system_modstamp.replace(tzinfo=None) == datetime(2024, 3, 1, 12, 0, 0, 123456)
    assert row.deleted_at.tzinfo is not None
    assert row.synced_at.utcoffset() == timedelta(0)
    assert row.is_deleted is True


def test_modstamp_ordering_uses_the_instant_not_the_local_clock(engine: sa.Engine) -> None:
    """12:00 at +05:00 is earlier than 08:00 UTC; a naive text comparison would get it wrong."""
    upsert(engine, persons, [person("003A", datetime(2024, 3, 1, 8, 0, tzinfo=UTC), email="utc")])
    earlier = datetime(2024, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=5)))
    assert upsert(engine, persons, [person("003A", earlier, email="older")]) == 0
    assert stored(engine, persons)["003A"].email == "utc"


def test_naive_datetimes_are_refused(engine: sa.Engine) -> None:
    naive = datetime(2024, 3, 1, 12, 0)
    with pytest.raises(InvalidRowsError, match="naive"):
        upsert(engine, persons, [person("003A", naive)])
    frame = pd.DataFrame([person("003A", naive)])
    assert frame["system_modstamp"].dtype.kind == "M"
    with pytest.raises(InvalidRowsError, match="naive"):
        upsert(engine, persons, frame)
    with pytest.raises(InvalidRowsError, match="naive"):
        upsert(engine, persons, [person("003A", T0, deleted_at=naive)])
    assert stored(engine, persons) == {}


def test_naive_datetime_is_refused_by_the_column_type(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive"), engine.begin() as conn:
        conn.execute(sa.insert(persons).values(person("003A", datetime(2024, 1, 1), synced_at=T0)))


def test_tenants_are_isolated(engine: sa.Engine) -> None:
    upsert(
        engine,
        persons,
        [
            person("003A", T0, tenant="t1", email="one@t1.io"),
            person("003A", T0, tenant="t2", email="one@t2.io"),
        ],
    )
    upsert(engine, persons, [person("003A", T0 + timedelta(1), tenant="t2", email="two@t2.io")])
    assert stored(engine, persons, "t1")["003A"].email == "one@t1.io"
    assert stored(engine, persons, "t2")["003A"].email == "two@t2.io"


def test_rollback_discards_the_upsert(engine: sa.Engine) -> None:
    upsert(engine, persons, [person("003A", T0, email="committed")])
    with engine.connect() as conn:
        conn.begin()
        assert upsert_records(conn, persons, [person("003A", T0 + timedelta(1), email="x")]) == 1
        assert upsert_records(conn, persons, [person("003B", T0)]) == 1
        conn.rollback()
    rows = stored(engine, persons)
    assert list(rows) == ["003A"]
    assert rows["003A"].email == "committed"


def test_two_upserts_in_one_transaction(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        first = upsert_records(conn, persons, [person("003A", T0, email="one")])
        second = upsert_records(conn, persons, [person("003A", T0, email="two")])
    assert (first, second) == (1, 1)
    assert stored(engine, persons)["003A"].email == "two"


def test_partial_columns_update_only_those_columns(engine: sa.Engine) -> None:
    upsert(engine, persons, [person("003A", T0, email="keep@x.io", title="CTO")])
    later = T0 + timedelta(minutes=1)
    upsert(engine, persons, [person("003A", later, is_deleted=True, deleted_at=later)])
    row = stored(engine, persons)["003A"]
    assert (row.email, row.title, row.is_deleted, row.deleted_at) == (
        "keep@x.io",
        "CTO",
        True,
        later,
    )


def test_dates_and_amounts(engine: sa.Engine) -> None:
    rows = pd.DataFrame(
        {
            "tenant_id": ["t1"] * 3,
            "external_id": ["006A", "006B", "006C"],
            "close_date": [date(2024, 6, 30), "2024-07-01", None],
            "amount": [1200.5, None, 0.0],
            "system_modstamp": [T0] * 3,
        }
    )
    upsert(engine, opportunities, rows)
    stored_rows = stored(engine, opportunities)
    assert stored_rows["006A"].close_date == date(2024, 6, 30)
    assert stored_rows["006B"].close_date == date(2024, 7, 1)
    assert stored_rows["006C"].close_date is None
    assert (stored_rows["006A"].amount, stored_rows["006B"].amount) == (1200.5, None)


def test_table_without_modstamp_takes_the_last_row(engine: sa.Engine) -> None:
    def score(value: float) -> dict:
        return {
            "tenant_id": "t1",
            "entity_type": "persons",
            "external_id": "003A",
            "fit_score": value,
            "scored_at": T0,
        }

    assert upsert(engine, scores, [score(10.0), score(20.0)]) == 1
    assert upsert(engine, scores, [score(5.0)]) == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(scores.c.fit_score)).scalar_one() == 5.0


def test_large_batch_on_the_fast_path(engine: sa.Engine) -> None:
    count = 5_000
    frame = pd.DataFrame(
        {
            "tenant_id": "t1",
            "external_id": [f"003{i:012d}" for i in range(count)],
            "email": [f"p{i}@x.io" for i in range(count)],
            "system_modstamp": pd.date_range(T0, periods=count, freq="s"),
            "custom_fields": [{"i": i} for i in range(count)],
        }
    )
    assert upsert(engine, persons, frame) == count
    assert upsert(engine, persons, frame.assign(email="changed")) == count
    with engine.connect() as conn:
        total, changed = conn.execute(
            sa.select(sa.func.count(), sa.func.count().filter(persons.c.email == "changed"))
        ).one()
    assert (total, changed) == (count, count)


def _sqlite_inserts(engine: sa.Engine) -> list[tuple[str, Any, bool]]:
    """Record every INSERT the engine runs: its SQL, parameters and whether it was executemany."""
    calls: list[tuple[str, Any, bool]] = []

    def record(_conn, _cursor, sql, parameters, _context, many) -> None:
        if sql.startswith("INSERT"):
            calls.append((sql, parameters, many))

    sa.event.listen(engine, "before_cursor_execute", record)
    return calls


@pytest.mark.parametrize("max_chars", [None, 20_000, 10])
def test_a_sqlite_page_goes_in_one_json_statement_halved_when_too_large(
    sqlite_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, max_chars: int | None
) -> None:
    """2,501 rows: one statement binding one JSON text of the varying columns and, once each,
    the columns holding one value (tenant, stamp, synced_at), so neither the variable limit nor
    the page's size shapes the SQL; a text over the limit is halved until each fits, and a row
    that alone does not fit sends the page row by row. The count leaves out the row an older
    stamp skipped."""
    from gtm_pipeline.store import upsert as upsert_module

    newer = T0 + timedelta(hours=1)
    upsert(sqlite_engine, persons, [person("003KEEP", newer, email="new@x.io")])
    rows = [person(f"003{i:04d}", T0, email=f"{i}@x.io") for i in range(2500)]
    rows.append(person("003KEEP", T0, email="old@x.io"))
    if max_chars is not None:
        monkeypatch.setattr(upsert_module, "_JSON_CHUNK_MAX_CHARS", max_chars)
    inserts = _sqlite_inserts(sqlite_engine)
    with sqlite_engine.begin() as conn:
        conn.connection.driver_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 100)
        assert upsert_records(conn, persons, rows) == 2500
    assert len(stored(sqlite_engine, persons)) == 2501
    assert stored(sqlite_engine, persons)["003KEEP"].email == "new@x.io"
    if max_chars == 10:  # one row's JSON is longer
        assert len(inserts) == 1 and inserts[0][2] is True
        return
    assert len({sql for sql, _, _ in inserts}) == 1
    assert {len(parameters) for _, parameters, _ in inserts} == {4}
    texts = [parameters[0] for _, parameters, _ in inserts]
    assert all(len(row) == 2 for text in texts for row in json.loads(text))  # id, email
    assert sum(len(json.loads(text)) for text in texts) == 2501
    if max_chars is None:
        assert len(texts) == 1
    else:
        assert len(texts) > 1 and all(len(text) <= max_chars for text in texts)


@pytest.mark.parametrize(
    ("table", "column", "values", "path"),
    [
        # SQLite's JSON functions end text at NUL
        (persons, "title", ["Head\x00of Data", "CTO"], "rows"),
        # JSON's decimal text would be parsed by SQLite; infinity has no JSON at all
        (accounts, "annual_revenue", [0.1 + 0.2, 1e308 * 10], "rows"),
        # one value throughout is bound once, whatever it is
        (accounts, "annual_revenue", [0.1 + 0.2, 0.1 + 0.2], "json"),
        (persons, "title", ["Head\x00of Data", "Head\x00of Data"], "json"),
    ],
)
def test_values_json_would_change_go_row_by_row_on_sqlite(
    sqlite_engine: sa.Engine, table: sa.Table, column: str, values: list, path: str
) -> None:
    inserts = _sqlite_inserts(sqlite_engine)
    rows = [person(f"001{i}", T0, **{column: value}) for i, value in enumerate(values)]
    assert upsert(sqlite_engine, table, rows) == 2
    assert len(inserts) == 1 and ("json_each" in inserts[0][0]) is (path == "json")
    assert [getattr(row, column) for row in stored(sqlite_engine, table).values()] == values


@pytest.mark.parametrize(
    ("phones", "texts"),
    [([1, 1.0, True], ["1", "1.0", "1"]), ([1.0, 1.0, 1.0], ["1.0", "1.0", "1.0"])],
)
def test_values_equal_in_python_keep_their_own_text_on_sqlite(
    sqlite_engine: sa.Engine, phones: list, texts: list[str]
) -> None:
    """1, 1.0 and True are equal in Python, but SQLite writes 1.0 into a text column as '1.0':
    a column is bound once only when it holds one value of one type."""
    rows = [person(f"003{i}", T0, phone=phone) for i, phone in enumerate(phones)]
    upsert(sqlite_engine, persons, rows)
    assert [row.phone for row in stored(sqlite_engine, persons).values()] == texts


def test_a_text_that_is_not_utf8_is_refused_on_sqlite(sqlite_engine: sa.Engine) -> None:
    with pytest.raises(UnicodeEncodeError):
        upsert(sqlite_engine, persons, [person("003A", T0, title="lone \ud800 surrogate")])
    assert stored(sqlite_engine, persons) == {}


# Values at the edges of what JSON carries back unchanged: NUL, an escaped-looking text, the
# integers around 64 bits.
_texts = st.one_of(
    st.none(), st.text(max_size=30), st.sampled_from(["", " ", "a\x00b", "\\u0000", "é😀"])
)
_integers = st.one_of(
    st.integers(), st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64])
)
# Equal in Python, stored differently by SQLite in a text column ('1', '1.0'): a column of these
# is bound once only when its values are one value of one type.
_look_alike = st.sampled_from([1, True, 1.0, 0.5])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "email": _texts,
                "title": _texts,
                "phone": st.one_of(_texts, _integers, _look_alike),
                "is_deleted": st.booleans(),
                "is_converted": st.one_of(st.none(), st.booleans()),
                "custom_fields": st.one_of(
                    st.none(), st.dictionaries(st.text(max_size=5), _texts, max_size=3)
                ),
            }
        ),
        min_size=1,
        max_size=12,
    )
)
def test_sqlite_engines_the_same_values_and_types_through_json_as_row_by_row(
    sqlite_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, rows: list[dict]
) -> None:
    """Each page upserted twice, under two tenants: once as prepared (JSON chunks when its
    values allow), once with the JSON path turned off. Every stored value and its SQLite
    storage class must match, column by column."""
    from gtm_pipeline.store import upsert as upsert_module

    page = [person(f"003{i:04d}", T0 + timedelta(seconds=i), **row) for i, row in enumerate(rows)]
    outcomes = []
    for tenant, json_page in (("json", upsert_module._sqlite_json_page), ("rows", lambda _: None)):
        with monkeypatch.context() as patch:
            patch.setattr(upsert_module, "_sqlite_json_page", json_page)
            try:
                upsert(sqlite_engine, persons, [{**row, "tenant_id": tenant} for row in page])
                outcomes.append(_stored_as_sqlite_holds_it(sqlite_engine, tenant))
            except (OverflowError, UnicodeEncodeError, InvalidRowsError) as exc:
                outcomes.append(type(exc))
    with sqlite_engine.begin() as conn:
        conn.execute(sa.delete(persons))
    assert outcomes[0] == outcomes[1]


def _stored_as_sqlite_holds_it(engine: sa.Engine, tenant: str) -> list[tuple]:
    """Every column of the tenant's persons except `synced_at`, with its storage class."""
    names = [c.name for c in persons.columns if c.name not in ("tenant_id", "synced_at")]
    selected = ", ".join(f'typeof("{name}"), "{name}"' for name in names)
    with engine.connect() as conn:
        return list(
            conn.exec_driver_sql(
                f"SELECT {selected} FROM persons WHERE tenant_id = ? ORDER BY external_id",  # noqa: S608
                (tenant,),
            )
        )


def test_empty_input_writes_nothing(engine: sa.Engine) -> None:
    assert upsert(engine, persons, []) == 0
    assert upsert(engine, persons, pd.DataFrame(columns=["tenant_id", "external_id"])) == 0
    assert stored(engine, persons) == {}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"tenant_id": "t1", "external_id": "003A", "system_modstamp": T0, "Email": "x"}],
            "Email",
        ),
        ([{"tenant_id": "t1", "system_modstamp": T0}], "external_id"),
        ([{"tenant_id": "t1", "external_id": "003A"}], "system_modstamp"),
        ([person("003A", None)], "system_modstamp must not be empty"),
        ([person(None, T0)], "external_id must not be empty"),
        ([person("003A", "2024-03-01T12:00:00Z")], "timezone-aware datetimes, got str"),
        ([person("003A", T0, is_deleted=None)], "is_deleted must not be empty"),
        ([{}], "lack required column"),
        ("not rows", "DataFrame or a list of dicts"),
    ],
)
def test_bad_rows_are_refused_with_a_clear_error(
    engine: sa.Engine, rows: Any, message: str
) -> None:
    with pytest.raises(InvalidRowsError, match=message):
        upsert(engine, persons, rows)


def test_wrong_value_types_are_refused(engine: sa.Engine) -> None:
    row = {"tenant_id": "t1", "external_id": "001A", "system_modstamp": T0}
    with pytest.raises(InvalidRowsError, match="employee_count"):
        upsert(engine, accounts, [{**row, "employee_count": 12.5}])
    with pytest.raises(InvalidRowsError, match="close_date"):
        upsert(engine, opportunities, [{**row, "close_date": "30/06/2024"}])
    with pytest.raises(InvalidRowsError, match="custom_fields .*not valid JSON"):
        upsert(engine, accounts, [{**row, "custom_fields": {"Score__c": float("nan")}}])
    with pytest.raises(InvalidRowsError, match="custom_fields .*not valid JSON"):
        upsert(engine, accounts, [{**row, "custom_fields": {"When__c": T0}}])
    assert stored(engine, accounts) == {}


def test_postgres_staging_tables_do_not_outlive_the_upsert(engine: sa.Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("COPY staging exists only on PostgreSQL")
    with engine.begin() as conn:
        upsert_records(conn, persons, [person("003A", T0)])
        upsert_records(conn, persons, [person("003B", T0)])
        leftovers = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND relkind = 'r'"
        ).scalar_one()
    assert leftovers == 0
    assert set(stored(engine, persons)) == {"003A", "003B"}


def _copy_formats(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record whether each PostgreSQL COPY of the test went in binary format."""
    from gtm_pipeline.store import upsert as upsert_module

    formats: list[bool] = []
    copy_rows = upsert_module._copy_rows

    class Recording:
        """The COPY's cursor, noting the format of each COPY statement it runs."""

        def __init__(self, cursor) -> None:
            self._cursor = cursor

        def __getattr__(self, name: str):
            return getattr(self._cursor, name)

        def copy(self, statement: str, *args, **kwargs):
            formats.append("FORMAT BINARY" in statement)
            return self._cursor.copy(statement, *args, **kwargs)

    def spy(cursor, *args):
        return copy_rows(Recording(cursor), *args)

    monkeypatch.setattr(upsert_module, "_copy_rows", spy)
    return formats


def test_typed_rows_copy_in_binary_and_read_back_the_same(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("COPY exists only on PostgreSQL")
    formats = _copy_formats(monkeypatch)
    frame = pd.DataFrame(
        {
            "tenant_id": ["t1", "t1"],
            "external_id": ["006A", "006B"],
            "name": ["Renewal — Zoë", None],
            "amount": [1234.5, np.nan],
            "close_date": [date(2024, 6, 30), None],
            "system_modstamp": pd.to_datetime([T0, T0 + timedelta(seconds=1)], utc=True),
            "is_deleted": [False, True],
            "deleted_at": pd.to_datetime([None, T0], utc=True),
            "custom_fields": [{"Tier__c": "A", "Score__c": 81.5}, None],
        }
    )
    assert upsert(engine, opportunities, frame) == 2
    rows = stored(engine, opportunities)
    assert formats == [True]
    assert rows["006A"].name == "Renewal — Zoë"
    assert rows["006A"].amount == 1234.5
    assert rows["006A"].close_date == date(2024, 6, 30)
    assert rows["006A"].custom_fields == {"Tier__c": "A", "Score__c": 81.5}
    assert rows["006A"].deleted_at is None
    assert rows["006B"].system_modstamp == T0 + timedelta(seconds=1)
    assert rows["006B"].is_deleted is True and rows["006B"].deleted_at == T0
    assert rows["006B"].amount is None and rows["006B"].close_date is None


def test_a_number_in_a_text_column_is_stored_as_its_text(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    formats = _copy_formats(monkeypatch)
    upsert(engine, persons, [person("003A", T0, phone=5550100, title="CTO")])
    assert stored(engine, persons)["003A"].phone == "5550100"
    assert formats == ([False] if engine.dialect.name == "postgresql" else [])


@pytest.mark.parametrize("too_large", [2**31, -(2**31) - 1, 2**40])
def test_an_integer_too_large_for_its_postgres_column_is_refused_not_wrapped(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, too_large: int
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's INTEGER holds 64 bits")
    formats = _copy_formats(monkeypatch)
    row = {"tenant_id": "t1", "system_modstamp": T0}
    upsert(engine, accounts, [{**row, "external_id": "001A", "employee_count": 2**31 - 1}])
    with pytest.raises(psycopg.DataError, match="out of range"):  # raised by COPY itself
        upsert(engine, accounts, [{**row, "external_id": "001B", "employee_count": too_large}])
    assert formats == [True, False]  # the edge of the range still goes in binary
    assert {k: r.employee_count for k, r in stored(engine, accounts).items()} == {"001A": 2**31 - 1}


@pytest.mark.parametrize(
    ("postgres_type", "column_type", "values", "binary"),
    [
        ("float8", sa.Float(), [1.5, None], True),
        ("float4", sa.REAL(), [1.5], False),  # a float too large for `real` must reach the server
        ("float4", sa.Float(), [1.5], False),  # a model type that is `real` on PostgreSQL only
        ("numeric", sa.Numeric(), [1.5], False),
        ("bpchar", sa.CHAR(3), ["abc"], False),  # psycopg has no binary dumper for `char`
        ("text", sa.Text(), ["a", None], True),
        ("text", sa.Text(), ["a", 1], False),
        ("varchar", sa.String(64), ["a"], True),
        ("int4", sa.Integer(), [None, 2**31 - 1, -(2**31)], True),
        ("int4", sa.Integer(), [2**31], False),
        ("int4", sa.Text(), ["5"], False),  # a table that drifted from the model
        ("int8", sa.BigInteger(), [2**40], True),
        ("int2", sa.SmallInteger(), [2**15], False),
        ("bool", sa.Boolean(), [True, None], True),
        ("date", sa.Date(), [date(2024, 6, 30)], True),
        ("jsonb", sa.JSON(), ['{"a": 1}', None], True),
        ("jsonb", sa.Text(), ['{"a": 1}'], False),
    ],
)
def test_binary_copy_only_for_values_its_dumpers_take_as_text_copy_would(
    postgres_type: str, column_type: sa.types.TypeEngine, values: list, binary: bool
) -> None:
    from psycopg.postgres import types as postgres_types

    from gtm_pipeline.store.upsert import _binary_ready

    assert _binary_ready(postgres_types[postgres_type].oid, column_type, values) is binary


def test_a_prepared_upsert_is_written_only_to_the_database_it_was_made_for(
    engine: sa.Engine,
) -> None:
    """`prepare_upsert` (no connection) then `write_upsert`: the same rows as `upsert_records`;
    rows converted for one database are refused by the other before any statement."""
    rows = [person("003A", T0, email="a@x.io"), person("003B", T0, email="b@x.io")]
    batch = prepare_upsert(engine.dialect, persons, rows)
    with engine.begin() as conn:
        assert write_upsert(conn, batch) == 2
    assert set(stored(engine, persons)) == {"003A", "003B"}
    other = sqlite_dialect() if engine.dialect.name == "postgresql" else postgresql_dialect()
    foreign = prepare_upsert(other, persons, [person("003C", T0)])
    with engine.begin() as conn, pytest.raises(StoreError, match="cannot be written"):
        write_upsert(conn, foreign)
    assert set(stored(engine, persons)) == {"003A", "003B"}


def test_bad_rows_are_refused_while_preparing_with_no_connection() -> None:
    with pytest.raises(InvalidRowsError, match="no column"):
        prepare_upsert(sqlite_dialect(), persons, [person("003A", T0, nickname="x")])


def test_an_unknown_database_is_refused_while_preparing() -> None:
    with pytest.raises(StoreError, match="SQLite and PostgreSQL"):
        prepare_upsert(mysql.dialect(), persons, [person("003A", T0)])


def test_postgres_rows_go_in_key_order_and_sqlite_rows_as_given() -> None:
    ids = ["003C", "003A", "003D", "003B"]
    stamps = [T0 + timedelta(seconds=i) for i in range(4)]
    tenants = ["t2", "t1", "t1", "t1"]
    rows = [
        person(i, s, tenant=t, email=f"{i}@x.io")
        for i, s, t in zip(ids, stamps, tenants, strict=True)
    ]

    def sent(dialect: sa.Dialect) -> list[tuple[str, str, str]]:
        batch = prepare_upsert(dialect, persons, rows)
        columns = dict(zip(batch.rows.columns, batch.sent, strict=True))
        return list(
            zip(columns["tenant_id"], columns["external_id"], columns["email"], strict=True)
        )

    assert sent(postgresql_dialect()) == [
        ("t1", "003A", "003A@x.io"),
        ("t1", "003B", "003B@x.io"),
        ("t1", "003D", "003D@x.io"),
        ("t2", "003C", "003C@x.io"),
    ]
    assert [external_id for _, external_id, _ in sent(sqlite_dialect())] == ids


def test_keys_that_do_not_compare_keep_their_order_for_postgres() -> None:
    """A key column given numbers and text (the database refuses or casts them later) does not
    fail while sorting: the rows keep the caller's order."""
    rows = [person("003B", T0), person(7, T0), person("003A", T0)]
    batch = prepare_upsert(postgresql_dialect(), persons, rows)
    assert list(batch.sent[batch.rows.columns.index("external_id")]) == ["003B", 7, "003A"]


def test_postgres_key_order_within_one_tenant_sorts_by_id() -> None:
    ids = ["003C", "003A", "003D", "003B", "003A"]  # 003A twice: the newer version is kept
    rows = [person(i, T0 + timedelta(seconds=n), email=f"{n}") for n, i in enumerate(ids)]
    batch = prepare_upsert(postgresql_dialect(), persons, rows)
    columns = dict(zip(batch.rows.columns, batch.sent, strict=True))
    assert list(columns["external_id"]) == ["003A", "003B", "003C", "003D"]
    assert list(columns["email"]) == ["4", "3", "0", "2"]
    assert [s.second for s in columns["system_modstamp"]] == [4, 3, 0, 2]


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
        ),
        max_size=40,
    ).map(lambda values: values + values[: len(values) // 2])  # repeated instants
)
def test_aware_datetimes_match_each_instant_made_alone(values) -> None:
    """One datetime per distinct instant, NaT as None, in the rows' order (PostgreSQL's COPY)."""
    instants = np.array(
        [np.datetime64("NaT") if v is None else np.datetime64(v, "us") for v in values],
        dtype="datetime64[us]",
    )
    expected = [None if v is None else v.replace(tzinfo=UTC) for v in values]
    assert aware_datetimes(instants) == expected


def test_a_first_sync_writer_copies_new_rows_in_and_upserts_the_rest(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows whose key the writer has not written go in without staging; a key it wrote before,
    or one stored by another path, goes through the upsert, so an older version never wins."""
    if engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL copies a first sync's new rows in")
    from gtm_pipeline.store import upsert as upsert_module

    upserted: list[list[str]] = []
    upsert_postgresql = upsert_module._upsert_postgresql

    def spy(conn: sa.Connection, batch: Any) -> int:
        upserted.append(list(batch.rows.column("external_id")))
        return upsert_postgresql(conn, batch)

    monkeypatch.setattr(upsert_module, "_upsert_postgresql", spy)
    writer = WrittenKeys()

    def write(rows: list[dict], written: WrittenKeys | None = writer) -> int:
        with engine.begin() as conn:
            return write_upsert(conn, prepare_upsert(conn.dialect, persons, rows), written=written)

    later = T0 + timedelta(seconds=5)
    assert write([person("003A", T0, title="a"), person("003B", T0, title="b")]) == 2
    assert upserted == []
    served_again = [person("003A", T0 - timedelta(seconds=1), title="older"), person("003C", T0)]
    assert write(served_again) == 1
    assert upserted == [["003A"]]
    assert write([person("003D", later, title="elsewhere")], written=None) == 1
    upserted.clear()
    assert write([person("003D", T0, title="older"), person("003E", T0)]) == 1
    assert upserted == [["003D", "003E"]]
    rows = stored(engine, persons)
    assert {key: row.title for key, row in rows.items()} == {
        "003A": "a",
        "003B": "b",
        "003C": None,
        "003D": "elsewhere",
        "003E": None,
    }
