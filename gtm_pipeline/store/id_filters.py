"""Filtering rows by many record ids in one statement: the ids travel as a single value.

PostgreSQL gets them as one text value that the server splits (`string_to_array`), SQLite as one
JSON array read through `json_each`: a batch of 10,000 ids is one statement with one bound value
on either database, instead of ten statements of 1,000 placeholders each (SQLite parsed each
anew; the JSON form took 7 ms where the chunks took 18 ms per 10,000-id batch).

PostgreSQL hashes the ids when it plans the statement for their actual values, which the store
engine makes sure of (`store/engine.py`: no server-side prepared statements); a statement
planned once for any ids compares each row with the whole array, quadratic in batch size.
`string_to_array` is immutable, so the planner folds it into a constant array and hashes that
as it does an array parameter. The joined text is cheaper to send: psycopg quotes an array
parameter element by element (a 20,000-id DELETE from the quarantine: ~10 ms instead of ~50 ms).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# Joins the ids for `string_to_array`: a control character that no Salesforce id holds. Ids that
# do hold it (a malformed record's) travel as an array parameter instead.
_SEPARATOR = "\x1f"


def among(conn: sa.Connection, column: sa.Column[Any], values: Sequence[str]) -> Any:
    """`column IN values`, `values` bound as one joined text (PostgreSQL) or JSON text (SQLite)."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(_postgres_ids(column, values))
    listed = sa.func.json_each(sa.literal(json.dumps(list(values)), sa.Text)).table_valued("value")
    return column.in_(sa.select(listed.c.value))


def rows_by_id(
    conn: sa.Connection,
    table: sa.Table,
    tenant_id: str,
    external_ids: Sequence[str],
    *columns: sa.Column[Any],
    lock: bool = False,
) -> sa.Select[Any]:
    """`columns` of the tenant's rows of `table` with these external ids, each found through
    the primary key (`lock`: FOR UPDATE).

    PostgreSQL gets one key lookup per id (a LATERAL subquery over the unnested ids, kept from
    being flattened into a join by an OFFSET 0; a LIMIT 1 made the planner hope for an early
    match and filter the tenant's rows through another index instead) instead of
    `external_id = ANY(...)`: while the table has no statistics (a new store's first sync, or a
    new tenant's before the next ANALYZE), the planner took the tenant for a few rows and read all
    of them through the modstamp index for every lookup, a cost that grew with each batch: the
    stored stamps of a 1,000,000-Contact first sync's quarantined ids took 6.3 s instead of 0.24 s.
    SQLite already looks each id up by the key. The ids go in sorted, so that `lock` takes the
    rows in key order, as upserts do (`upsert._in_key_order`)."""
    try:
        external_ids = sorted(set(external_ids))
    except TypeError:  # not all text: `_postgres_ids` binds them as an array, which says why
        external_ids = list(dict.fromkeys(external_ids))
    if conn.dialect.name != "postgresql":
        query = sa.select(*columns).where(
            table.c.tenant_id == tenant_id, among(conn, table.c.external_id, external_ids)
        )
        return query.with_for_update() if lock else query
    ids = (
        sa.func.unnest(_postgres_ids(table.c.external_id, external_ids))
        .table_valued("id")
        .render_derived()
    )
    found = (
        sa.select(*columns)
        .where(table.c.tenant_id == tenant_id, table.c.external_id == ids.c.id)
        .offset(0)
    )
    found = (found.with_for_update() if lock else found).lateral()
    return sa.select(*found.c).select_from(ids.join(found, sa.true()))


def _postgres_ids(column: sa.Column[Any], values: Sequence[str]) -> Any:
    array_type = postgresql.ARRAY(column.type)
    try:
        joined = _SEPARATOR.join(values)
    except TypeError:  # a value that is not text: bound as an array, which says what is wrong
        joined = ""
    # Empty text splits into no ids at all, so no ids and a lone "" go as an array too.
    if joined and joined.count(_SEPARATOR) == len(values) - 1:
        separator = sa.literal_column(f"chr({ord(_SEPARATOR)})")  # in the SQL, not bound
        return sa.func.string_to_array(sa.literal(joined, sa.Text), separator, type_=array_type)
    return sa.literal(list(values), type_=array_type)
