"""Bulk upserts keyed by primary key, guarded by `system_modstamp`, on each database's fast path.

A row is applied only when its `system_modstamp` is not older than the stored one, so
re-reading an overlap window rewrites identical data and an older version read late can never
overwrite a newer one. Work happens inside the caller's transaction; nothing here commits, so
the sync can commit a page of rows together with the cursor that covers them.

- SQLite: `INSERT ... SELECT ... FROM json_each(?) ON CONFLICT DO UPDATE ... WHERE`, the page's
  rows sent as one JSON text (halved while too large) and its columns holding one value bound
  once, when SQLite's JSON functions give every other value back as binding it would
  (`_sqlite_json_page`); otherwise one `INSERT ... VALUES (?, ...)` prepared once and run for
  every row (`executemany`). Both in the caller's transaction.
- PostgreSQL: `COPY` into a temporary staging table, then one
  `INSERT ... SELECT ... ON CONFLICT DO UPDATE ... WHERE`. COPY goes in binary format when
  psycopg's binary dumper for each staging column takes its values as text COPY would (a third of
  the time of the text format for 20,000 Contacts), else in text format. A first full sync's
  rows, which cannot be stored yet, are copied straight into the table (`store/written_keys.py`).

SQL text is assembled here only from names taken from the `Table` (incoming column names are
checked against it first) and quoted by the dialect; every value travels as a bound parameter
or through COPY.

`upsert_records` does both steps in one call. A pipeline that loads on one thread and works on
the next batch on another calls them apart: `prepare_upsert` (validation and every conversion:
CPU only, no connection) on the working thread, `write_upsert` (the statements) on the loading
one, so the loading thread spends its time in the database.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa
from psycopg.errors import UniqueViolation
from psycopg.postgres import types as postgres_types
from psycopg.types.json import set_json_dumps

from gtm_pipeline.store.errors import InvalidRowsError, StoreError
from gtm_pipeline.store.rows import (
    MODSTAMP_COLUMN,
    ColumnValues,
    Rows,
    ValidatedRows,
    aware_datetimes,
    instants_column,
    validate_rows,
)
from gtm_pipeline.store.types import UTCDateTime, sqlite_instant_texts, sqlite_timestamp_texts
from gtm_pipeline.store.written_keys import WrittenKeys

_staging_names = itertools.count(1)
# One reusable encoder: `json.dumps` with options builds a new encoder on every call. NaN is
# refused because PostgreSQL's JSON has no NaN; the error names it instead of the server.
_encode_json = json.JSONEncoder(allow_nan=False).encode


def upsert_records(
    conn: sa.Connection, table: sa.Table, rows: Rows, *, written: WrittenKeys | None = None
) -> int:
    """Insert or update `rows` in `table`; return how many rows were inserted or updated.

    Rows whose `system_modstamp` is older than the stored version are skipped and not counted.
    Only the columns present in `rows` are written, so a caller can, for example, mark rows
    deleted by sending just the key, `system_modstamp`, `is_deleted` and `deleted_at`.
    `synced_at` is filled with the current time when the rows do not carry it, and a key
    repeated within `rows` counts once (its newest version; see `rows.validate_rows`).
    `written`: as `write_upsert` takes it.
    """
    return write_upsert(conn, prepare_upsert(conn.dialect, table, rows), written=written)


@dataclass(frozen=True)
class UpsertBatch:
    """Validated rows converted for one database: all `write_upsert` sends.

    `sent` holds each column of `rows` as that database's path binds it (SQLite: the column
    type's bind processing; PostgreSQL: as COPY takes it). `json` (SQLite only) holds the same
    rows as `json_each` reads them, when they can travel that way (`_sqlite_json_page`).
    """

    rows: ValidatedRows
    dialect: str
    sent: tuple[ColumnValues, ...]
    json: JsonPage | None = None

    def __len__(self) -> int:
        return len(self.rows)


def prepare_upsert(dialect: sa.Dialect, table: sa.Table, rows: Rows) -> UpsertBatch:
    """Validate and convert `rows` for an upsert into `table` on `dialect`'s database.

    CPU work only: it raises `InvalidRowsError` for bad rows before any statement is sent, and
    can run on another thread than the one that writes (`write_upsert`). `synced_at`, when
    filled here, is the time of this call.
    """
    validated = validate_rows(table, rows)
    if dialect.name == "sqlite":
        bound = tuple(_sqlite_bound_columns(dialect, validated))
        return UpsertBatch(validated, dialect.name, bound, _sqlite_json_page(bound))
    if dialect.name != "postgresql":
        raise StoreError(f"bulk upsert supports SQLite and PostgreSQL, not {dialect.name}")
    validated = _in_key_order(validated)
    sent = [
        _postgres_copy_column(validated, name, values)
        for name, values in zip(validated.columns, validated.values, strict=True)
    ]
    return UpsertBatch(validated, dialect.name, tuple(sent))


def _one_value(values: ColumnValues) -> bool:
    """Whether a column holds one value throughout, of one type (1, 1.0 and True are equal in
    Python but stored differently by SQLite)."""
    return (
        isinstance(values, list)
        and len(values) > 0
        and values.count(values[0]) == len(values)
        and len(set(map(type, values))) == 1
    )


def _in_key_order(validated: ValidatedRows) -> ValidatedRows:
    """The rows sorted by primary key, for PostgreSQL, which inserts them in staging order: the
    key's index is then filled left to right instead of at random (the merge of 25,000 Contacts
    took ~12% less time, median of 6 alternated loads). Key columns holding one value (a batch's
    tenant) are left out of the comparison; keys that do not compare (text and numbers mixed)
    keep their order."""
    if len(validated) < 2:
        return validated
    try:
        order = sorted(range(len(validated)), key=_varying_keys(validated).__getitem__)
    except TypeError:
        return validated
    return validated.taken(order)


def _varying_keys(validated: ValidatedRows) -> Sequence[Any]:
    """Each row's key without the key columns holding one value (a batch's tenant): the values
    of the one key column left, or tuples when more are left."""
    keys = [validated.column(name) for name in validated.key_columns]
    varying = [key for key in keys if not _one_value(key)] or keys[-1:]
    return varying[0] if len(varying) == 1 else list(zip(*varying, strict=True))


def write_upsert(
    conn: sa.Connection, batch: UpsertBatch, *, written: WrittenKeys | None = None
) -> int:
    """Apply a prepared upsert in the caller's transaction; rows inserted or updated.

    `written`: the keys this writer has written so far to a table that held none of them when
    it began (a first full sync, `store/written_keys.py`). On PostgreSQL, rows whose key is not
    among them are copied straight into the table (`_copy_new_rows`); the result is the same."""
    if conn.dialect.name != batch.dialect:
        raise StoreError(
            f"rows prepared for {batch.dialect} cannot be written to {conn.dialect.name}"
        )
    if len(batch) == 0:
        return 0
    if batch.dialect == "sqlite":
        return _upsert_sqlite(conn, batch)
    if written is None:
        return _upsert_postgresql(conn, batch)
    return _write_mostly_new(conn, batch, written)


def _quoted_columns(conn: sa.Connection, names: tuple[str, ...]) -> str:
    quote = conn.dialect.identifier_preparer.quote
    return ", ".join(quote(name) for name in names)


def _on_conflict_clause(conn: sa.Connection, validated: ValidatedRows) -> str:
    """`ON CONFLICT (key) DO UPDATE SET ... WHERE newer-or-equal`, shared by both databases."""
    preparer = conn.dialect.identifier_preparer
    target = preparer.format_table(validated.table)
    keys = validated.key_columns
    updates = [name for name in validated.columns if name not in keys]
    conflict = f"ON CONFLICT ({_quoted_columns(conn, keys)})"
    if not updates:
        return f"{conflict} DO NOTHING"
    assignments = ", ".join(
        f"{preparer.quote(name)} = excluded.{preparer.quote(name)}" for name in updates
    )
    clause = f"{conflict} DO UPDATE SET {assignments}"
    if validated.guarded_by_modstamp:
        modstamp = preparer.quote(MODSTAMP_COLUMN)
        clause += f" WHERE excluded.{modstamp} >= {target}.{modstamp}"
    return clause


def _json_texts(validated: ValidatedRows, name: str, values: ColumnValues) -> list[str | None]:
    """Encode a JSON column the same way for both databases, naming the column on failure."""
    try:
        return [None if value is None else _encode_json(value) for value in values]
    except (TypeError, ValueError) as exc:
        raise InvalidRowsError(
            f"column {validated.table.name}.{name} holds a value that is not valid JSON: {exc}"
        ) from None


def _sqlite_bound_columns(dialect: sa.Dialect, validated: ValidatedRows) -> list[ColumnValues]:
    """Apply each column type's SQLAlchemy bind processing, as a compiled statement would
    (timestamps in one vectorized pass that gives the same text)."""
    bound: list[ColumnValues] = []
    for name, values in zip(validated.columns, validated.values, strict=True):
        column_type = validated.table.c[name].type
        if isinstance(column_type, sa.JSON):
            bound.append(_json_texts(validated, name, values))
            continue
        if instants_column(values):
            bound.append(sqlite_instant_texts(values))
            continue
        if isinstance(column_type, UTCDateTime):
            texts = sqlite_timestamp_texts(values)
            if texts is not None:
                bound.append(texts)
                continue
        process = column_type.dialect_impl(dialect).bind_processor(dialect)
        bound.append([process(value) for value in values] if process else values)
    return bound


# The most text one JSON chunk may hold (SQLite's own limit on a bound value is 1,000,000,000
# bytes by default, and `json_each` holds a parse of the whole text): a larger page is split.
_JSON_CHUNK_MAX_CHARS = 64 * 1024 * 1024
# What SQLite's `json_extract` gives back exactly as binding it would: text, 64-bit integers,
# booleans (as 1 and 0) and NULL. Floats are left out: SQLite turns JSON's decimal text back into
# a double with its own parser, whose last-digit rounding has differed between versions.
_JSON_EXACT_TYPES = frozenset({str, bool, type(None)})


def _json_exact(values: ColumnValues) -> bool:
    """Whether every value of a bound SQLite column comes back unchanged through JSON."""
    kinds = set(map(type, values))
    if int in kinds:
        if not _integers_fit(64, [value for value in values if type(value) is int]):
            return False
        kinds.discard(int)
    return kinds <= _JSON_EXACT_TYPES


@dataclass(frozen=True)
class JsonPage:
    """A SQLite page as `json_each` reads it: the rows' varying values as JSON arrays (one text,
    or a few for a very large page); a column holding one value throughout is bound once."""

    sources: tuple[int | None, ...]
    """Per column: its position in each JSON row, or None when the column is bound once."""
    constants: tuple[Any, ...]
    """The values of the columns bound once, in column order."""
    chunks: tuple[str, ...]


def _sqlite_json_page(bound: Sequence[ColumnValues]) -> JsonPage | None:
    """The page as `json_each` reads it; None when a varying value would not come back unchanged
    through JSON: a float, an integer beyond 64 bits, another type, text holding NUL (SQLite's
    JSON functions end text there) or text that is not UTF-8 (lone surrogates)."""
    if not bound or not len(bound[0]):
        return None  # nothing to write
    single = [_one_value(values) for values in bound]
    varying = [values for values, one in zip(bound, single, strict=True) if not one]
    if not all(_json_exact(values) for values in varying):
        return None
    try:
        chunks = _json_arrays(list(zip(*varying, strict=True)) or [()] * len(bound[0]))
    except orjson.JSONEncodeError:
        return None
    if not chunks or any("\\u0000" in chunk for chunk in chunks):
        return None
    positions = iter(range(len(varying)))
    sources = tuple(None if one else next(positions) for one in single)
    constants = tuple(values[0] for values, one in zip(bound, single, strict=True) if one)
    return JsonPage(sources, constants, chunks)


def _json_arrays(rows: list[tuple[Any, ...]]) -> tuple[str, ...]:
    """`rows` as one JSON array, halved until each text fits `_JSON_CHUNK_MAX_CHARS`; none when
    a single row does not fit."""
    text = orjson.dumps(rows).decode()
    if len(text) <= _JSON_CHUNK_MAX_CHARS:
        return (text,)
    if len(rows) == 1:
        return ()
    half = len(rows) // 2
    first, second = _json_arrays(rows[:half]), _json_arrays(rows[half:])
    return first + second if first and second else ()


def _upsert_sqlite(conn: sa.Connection, batch: UpsertBatch) -> int:
    """The page's rows in one `INSERT ... SELECT ... FROM json_each(?)` statement (a few, for a
    very large page), else one single-row statement run for every row (`executemany`).

    The sqlite3 module lets go of the GIL around every statement step and takes it back after.
    Run for each row on the loading thread while other threads work in Python (reading and
    gating the next pages), each row's step waited for the GIL: a 1,000,000-Contact full sync
    spent a third of its INSERT time so. One statement for the page waits once (a statement
    per 2,000 rows still took that sync 38 s, one per 20,000-row page 32 s). Multi-row
    `VALUES (...), (...)` statements were slower than either: SQLite parses and plans a
    1,600-row statement of 30,000 placeholders for every chunk (10,000 rows of 19 columns:
    45-50 ms against 25 ms row by row, on one thread).
    """
    validated = batch.rows
    target = conn.dialect.identifier_preparer.format_table(validated.table)
    columns = _quoted_columns(conn, validated.columns)
    conflict = _on_conflict_clause(conn, validated)
    if batch.json is not None:
        page = batch.json
        # `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT, not a join.
        sql = (
            f"INSERT INTO {target} ({columns}) SELECT {_json_select(page)} "  # noqa: S608
            "FROM json_each(?1) WHERE true "
        )
        return sum(
            conn.exec_driver_sql(sql + conflict, (chunk, *page.constants)).rowcount
            for chunk in page.chunks
        )
    placeholders = ", ".join(["?"] * len(validated.columns))
    sql = f"INSERT INTO {target} ({columns}) VALUES ({placeholders}) "  # noqa: S608 - quoted names
    rows = list(zip(*batch.sent, strict=True))
    return conn.exec_driver_sql(sql + conflict, rows).rowcount


def _json_select(page: JsonPage) -> str:
    """Each column's value: from the JSON row, or its bound parameter (?2, ?3, ...)."""
    parameters = itertools.count(2)
    return ", ".join(
        f"?{next(parameters)}" if source is None else f"json_extract(value, '$[{source}]')"
        for source in page.sources
    )


def _postgres_copy_column(
    validated: ValidatedRows, name: str, values: ColumnValues
) -> ColumnValues:
    """A column as COPY takes it: JSON as JSON text, instants as aware datetimes, else as is."""
    if isinstance(validated.table.c[name].type, sa.JSON):
        return _json_texts(validated, name, values)
    if instants_column(values):
        return aware_datetimes(values)
    return values


def _oid(name: str) -> int:
    return postgres_types[name].oid


# Binary COPY is chosen per column by the staging table's own PostgreSQL type, which picks
# psycopg's dumper, and the model's type, whose values `validate_rows` (and
# `_postgres_copy_column`) made the Python type that dumper takes as text COPY would. Anything
# else goes as text, where the server reads each value: psycopg's binary dumpers wrap an integer
# too large for its column (2**31 was stored as -2**31) or a float too large for `real`, and have
# none for `char` or a native enum.
_TEXT_OIDS = frozenset({_oid("text"), _oid("varchar")})
_TEXT_TYPES = frozenset({str, type(None)})
_INTEGER_BITS = {_oid("int2"): 16, _oid("int4"): 32, _oid("int8"): 64}
_MODEL_TYPES: dict[int, type[sa.types.TypeEngine[Any]]] = {
    _oid("bool"): sa.Boolean,
    _oid("date"): sa.Date,
    _oid("timestamptz"): UTCDateTime,
    _oid("float8"): sa.Float,
    _oid("json"): sa.JSON,
    _oid("jsonb"): sa.JSON,
}


def _integers_fit(bits: int, values: ColumnValues) -> bool:
    present = [value for value in values if value is not None]
    return not present or (-(2 ** (bits - 1)) <= min(present) and max(present) < 2 ** (bits - 1))


def _binary_ready(oid: int, column_type: sa.types.TypeEngine[Any], values: ColumnValues) -> bool:
    """Whether binary COPY takes this column's values exactly as text COPY would."""
    if oid in _TEXT_OIDS:
        return set(map(type, values)) <= _TEXT_TYPES
    if oid in _INTEGER_BITS:
        return isinstance(column_type, sa.Integer) and _integers_fit(_INTEGER_BITS[oid], values)
    model_type = _MODEL_TYPES.get(oid)
    return model_type is not None and isinstance(column_type, model_type)


def _already_json(text: str) -> str:
    """psycopg's JSON dumps for a COPY of `_json_texts` output: the text is JSON already."""
    return text


def _copy_rows(
    cursor: Any,
    into: str,
    columns: str,
    validated: ValidatedRows,
    copy_columns: Sequence[ColumnValues],
    chosen: list[bool] | None = None,
) -> bool:
    """COPY the rows (those `chosen`, if given) into `into`, in binary format when every column
    allows; whether it did."""
    cursor.execute(f"SELECT {columns} FROM {into} LIMIT 0")  # noqa: S608 - quoted names
    type_oids = [column.type_code for column in cursor.description]
    binary = all(
        _binary_ready(oid, validated.table.c[name].type, values)
        for oid, name, values in zip(type_oids, validated.columns, copy_columns, strict=True)
    )
    copy_sql = f"COPY {into} ({columns}) FROM STDIN"
    if binary:
        set_json_dumps(_already_json, cursor)
        copy_sql += " (FORMAT BINARY)"
    with cursor.copy(copy_sql) as copy:
        if binary:
            copy.set_types(type_oids)
        rows: Iterable[tuple[Any, ...]] = zip(*copy_columns, strict=True)
        if chosen is not None:
            rows = itertools.compress(rows, chosen)
        for row in rows:
            copy.write_row(row)
    return binary


def _upsert_postgresql(conn: sa.Connection, batch: UpsertBatch) -> int:
    validated = batch.rows
    preparer = conn.dialect.identifier_preparer
    target = preparer.format_table(validated.table)
    columns = _quoted_columns(conn, validated.columns)
    staging = preparer.quote(f"gtm_stage_{validated.table.name}_{next(_staging_names)}")
    # Executed through SQLAlchemy first so the caller's transaction has begun before COPY. The
    # staging table is dropped below; if anything fails first, the rollback removes it.
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {staging} AS "  # noqa: S608 - quoted names
        f"SELECT {columns} FROM {target} WITH NO DATA"
    )
    driver_connection: Any = conn.connection.driver_connection
    with driver_connection.cursor() as cursor:
        _copy_rows(cursor, staging, columns, validated, batch.sent)
    insert = f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {staging} "  # noqa: S608
    result = conn.exec_driver_sql(insert + _on_conflict_clause(conn, validated))
    changed = result.rowcount
    conn.exec_driver_sql(f"DROP TABLE {staging}")
    return changed


def _write_mostly_new(conn: sa.Connection, batch: UpsertBatch, written: WrittenKeys) -> int:
    """Rows whose key was not `written` before copied in, the others upserted; if one of those
    copied is stored after all, the whole batch upserted instead."""
    again = written.record(_varying_keys(batch.rows))
    copied = _copy_new_rows(conn, batch, (~again).tolist())
    if copied is None:
        return _upsert_postgresql(conn, batch)
    if again.any():
        repeated = np.flatnonzero(again).tolist()
        sent = tuple(list(map(column.__getitem__, repeated)) for column in batch.sent)
        repeats = UpsertBatch(batch.rows.taken(repeated), batch.dialect, sent)
        copied += _upsert_postgresql(conn, repeats)
    return copied


def _copy_new_rows(conn: sa.Connection, batch: UpsertBatch, chosen: list[bool]) -> int | None:
    """COPY the `chosen` rows straight into their table, in a savepoint: no staging table and no
    conflict handling. None, the savepoint rolled back, when one of them is stored already: the
    key's unique index refuses it, so nothing stored is overwritten here."""
    count = sum(chosen)
    if not count:
        return 0
    validated = batch.rows
    target = conn.dialect.identifier_preparer.format_table(validated.table)
    columns = _quoted_columns(conn, validated.columns)
    driver_connection: Any = conn.connection.driver_connection
    try:
        with conn.begin_nested(), driver_connection.cursor() as cursor:
            _copy_rows(cursor, target, columns, validated, batch.sent, chosen)
    except UniqueViolation:
        return None
    return count
