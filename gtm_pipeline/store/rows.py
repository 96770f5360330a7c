"""Turn a page of records into validated, column-wise Python values ready for a bulk upsert.

Both databases' fast paths need plain Python values (None for missing, aware UTC datetimes,
`date`, `int`, `float`, `bool`, JSON-able objects), one key at most once per statement, and
clear errors for input that would otherwise fail deep inside a driver. This module does that
work once, vectorised where pandas allows, so the upsert code only moves data.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeAlias, TypeGuard

import numpy as np
import pandas as pd
import sqlalchemy as sa

from gtm_pipeline.store.errors import InvalidRowsError
from gtm_pipeline.store.types import NaiveDatetimeError, UTCDateTime, ensure_aware_utc

MODSTAMP_COLUMN = "system_modstamp"
SYNCED_AT_COLUMN = "synced_at"

Rows: TypeAlias = pd.DataFrame | Sequence[Mapping[str, Any]]
ColumnValues: TypeAlias = list[Any] | np.ndarray


@dataclass(frozen=True)
class ValidatedRows:
    """Rows for one table as `validate_rows` leaves them: checked against the table, column-wise,
    each primary key at most once; not yet converted for a database (`upsert.UpsertBatch` is).

    Each column is a list of plain Python values, except a timestamp column that came as a
    timezone-aware pandas column: that stays a numpy `datetime64` array of UTC instants (NaT
    where missing), which each database's path formats in one pass (`instants_column`).
    """

    table: sa.Table
    columns: tuple[str, ...]
    values: tuple[ColumnValues, ...]

    def __len__(self) -> int:
        return len(self.values[0]) if self.values else 0

    @property
    def key_columns(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.table.primary_key.columns)

    @property
    def guarded_by_modstamp(self) -> bool:
        """Whether an incoming row must be at least as new as the stored one to apply."""
        return MODSTAMP_COLUMN in self.table.c

    def column(self, name: str) -> ColumnValues:
        """The values of column `name`."""
        return self.values[self.columns.index(name)]

    def taken(self, positions: Sequence[int]) -> ValidatedRows:
        """The rows at `positions`, in that order."""
        values = tuple(
            column[positions]
            if instants_column(column)
            else list(map(column.__getitem__, positions))
            for column in self.values
        )
        return ValidatedRows(self.table, self.columns, values)


def validate_rows(table: sa.Table, rows: Rows, *, now: datetime | None = None) -> ValidatedRows:
    """Validate and normalise `rows` for `table`.

    Missing values (None, NaN, NaT, pd.NA) become None. `synced_at`, when the table has it and
    the rows do not, is set to `now` (default: the current UTC time) because it records when the
    row was written (a sync stamps a batch when it makes it ready, seconds before its commit).
    Rows repeating a key are collapsed to the one with the newest `system_modstamp` (the later
    row on a tie), since one statement cannot touch a row twice.
    """
    frame = _as_frame(rows)
    _check_columns(table, frame)
    if len(frame) == 0:
        return ValidatedRows(table, (), ())
    columns = [str(name) for name in frame.columns]
    values = [_convert(table.c[name], frame[name]) for name in columns]
    if SYNCED_AT_COLUMN in table.c and SYNCED_AT_COLUMN not in columns:
        stamp = ensure_aware_utc(now, "now") if now is not None else datetime.now(UTC)
        columns.append(SYNCED_AT_COLUMN)
        values.append([stamp] * len(frame))
    _check_not_null(table, columns, values)
    validated = ValidatedRows(table, tuple(columns), tuple(values))
    return _newest_per_key(validated)


def _as_frame(rows: Rows) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        return rows
    if isinstance(rows, Sequence) and not isinstance(rows, str | bytes):
        if not all(isinstance(row, Mapping) for row in rows):
            raise InvalidRowsError("rows must be a pandas DataFrame or a list of dicts")
        return pd.DataFrame(list(rows)) if rows else pd.DataFrame()
    raise InvalidRowsError(
        f"rows must be a pandas DataFrame or a list of dicts, got {type(rows).__name__}"
    )


def _check_columns(table: sa.Table, frame: pd.DataFrame) -> None:
    if frame.columns.has_duplicates:
        raise InvalidRowsError(f"rows for {table.name!r} repeat a column name")
    given = {str(name) for name in frame.columns}
    unknown = sorted(given - set(table.c.keys()))
    if unknown:
        raise InvalidRowsError(f"table {table.name!r} has no column(s) {', '.join(unknown)}")
    required = [column.name for column in table.primary_key.columns]
    if MODSTAMP_COLUMN in table.c:
        required.append(MODSTAMP_COLUMN)
    missing = [name for name in required if name not in given]
    if missing and len(frame) > 0:
        raise InvalidRowsError(
            f"rows for {table.name!r} lack required column(s) {', '.join(missing)}"
        )


def instants_column(values: ColumnValues) -> TypeGuard[np.ndarray]:
    """Whether a validated column holds numpy UTC instants rather than Python values."""
    return isinstance(values, np.ndarray)


def aware_datetimes(instants: np.ndarray) -> list[datetime | None]:
    """Numpy UTC instants as aware UTC datetimes, None where missing.

    One datetime per distinct instant, shared by the rows that hold it: a batch's `synced_at`
    is one instant, and making an aware datetime costs more than finding the distinct ones.
    """
    distinct, positions = np.unique(instants, return_inverse=True)
    stamps = pd.DatetimeIndex(distinct).tz_localize("UTC").to_pydatetime()
    stamps[np.isnat(distinct)] = None
    return stamps[positions.reshape(-1)].tolist()


def _check_not_null(table: sa.Table, columns: list[str], values: list[ColumnValues]) -> None:
    for name, column_values in zip(columns, values, strict=True):
        if table.c[name].nullable:
            continue
        if instants_column(column_values):
            nulls = int(np.isnat(column_values).sum())
        else:
            nulls = sum(map(operator.is_, column_values, itertools.repeat(None)))
        if nulls:
            raise InvalidRowsError(
                f"column {table.name}.{name} must not be empty ({nulls} row(s) have no value)"
            )


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _convert(column: sa.Column, series: pd.Series) -> ColumnValues:
    where = f"column {column.table.name}.{column.name}"
    column_type = column.type
    try:
        if isinstance(column_type, UTCDateTime):
            return _timestamps(series, where)
        if isinstance(column_type, sa.Date):
            return _dates(series, where)
        if isinstance(column_type, sa.Boolean):
            return pd.array(series, dtype="boolean").to_numpy(dtype=object, na_value=None).tolist()
        if isinstance(column_type, sa.Integer):
            return pd.array(series, dtype="Int64").to_numpy(dtype=object, na_value=None).tolist()
        if isinstance(column_type, sa.Float):
            return series.astype("float64").to_numpy(dtype=object, na_value=None).tolist()
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidRowsError):
            raise
        raise InvalidRowsError(f"{where} holds values of the wrong type: {exc}") from None
    if isinstance(column_type, sa.JSON):
        if series.isna().all():
            return [None] * len(series)
        return [None if _is_missing(value) else value for value in series.tolist()]
    return series.to_numpy(dtype=object, na_value=None).tolist()


def _timestamps(series: pd.Series, where: str) -> ColumnValues:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        # Kept as instants: making datetimes of them took ~15 ms per 20,000, and SQLite formats
        # its text straight from the array (PostgreSQL's COPY makes the datetimes it needs).
        return series.dt.tz_convert(None).to_numpy()
    if pd.api.types.is_datetime64_dtype(series.dtype):
        raise InvalidRowsError(
            f"{where} holds naive datetimes; make them timezone-aware "
            "(for example Series.dt.tz_localize('UTC'))"
        )
    if series.isna().all():  # a column of no stamps (`deleted_at` of live rows)
        return [None] * len(series)
    return [_timestamp(value, where) for value in series.tolist()]


def _timestamp(value: Any, where: str) -> datetime | None:
    if _is_missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise InvalidRowsError(
            f"{where} must hold timezone-aware datetimes, got {type(value).__name__}"
        )
    try:
        return ensure_aware_utc(value, where)
    except NaiveDatetimeError as exc:
        raise InvalidRowsError(str(exc)) from None


def _dates(series: pd.Series, where: str) -> list[Any]:
    if pd.api.types.is_datetime64_dtype(series.dtype) and not isinstance(
        series.dtype, pd.DatetimeTZDtype
    ):
        return [None if _is_missing(value) else value for value in series.dt.date]
    return [_date(value, where) for value in series.tolist()]


def _date(value: Any, where: str) -> date | None:
    if _is_missing(value):
        return None
    if isinstance(value, datetime):
        raise InvalidRowsError(f"{where} holds dates; got a datetime ({value.isoformat()})")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise InvalidRowsError(f"{where} holds dates; {value!r} is not YYYY-MM-DD") from None
    raise InvalidRowsError(f"{where} holds dates, got {type(value).__name__}")


def _newest_per_key(validated: ValidatedRows) -> ValidatedRows:
    """Keep one row per key: the newest `system_modstamp`, the later row on a tie."""
    keys = pd.DataFrame({name: validated.column(name) for name in validated.key_columns})
    if not keys.duplicated().any():
        return validated
    order = keys.assign(_position=range(len(keys)))
    sort_by = [*validated.key_columns]
    if validated.guarded_by_modstamp:
        modstamps = validated.column(MODSTAMP_COLUMN)
        stamps = pd.Series(modstamps, dtype=None if instants_column(modstamps) else object)
        order["_modstamp"] = pd.to_datetime(stamps, utc=True)
        sort_by.append("_modstamp")
    sort_by.append("_position")
    kept = order.sort_values(sort_by).drop_duplicates(list(validated.key_columns), keep="last")
    return validated.taken(sorted(kept["_position"].tolist()))
