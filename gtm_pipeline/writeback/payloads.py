"""Score rows to sObject Collections update records, the diff against what was settled, batches.

Pure functions: no Salesforce, no store. The values put into a record are exactly what is later
compared with the stored ones, so they are kept JSON-native (float, str or None): a value read
back from the store's JSON column then compares equal to a freshly built one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from gtm_pipeline.sync.entities import by_score_type

MAX_BATCH = 200

FLOAT_FIELDS = ("fit_score", "engagement_score", "combined_score")
SCORE_DECIMALS = 2
"""Scores are written with two decimals: what is sent is exactly what a number field of scale
2 stores, so reading a record back (after a lost answer) compares like with like."""
SCORE_WHOLE_DIGITS = 3
"""Scores run from 0 to 100: a number field needs three digits before its decimal point."""
TEXT_FIELDS = ("tier",)
DATETIME_FIELDS = ("scored_at",)
SCORE_FIELDS = FLOAT_FIELDS + TEXT_FIELDS + DATETIME_FIELDS

_SF_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_RESERVED_KEYS = {"attributes", "id"}

Record = dict[str, Any]


def validate_field_map(field_map: Mapping[str, str]) -> dict[str, str]:
    """Check a canonical → Salesforce field map before any record is built from it."""
    if not field_map:
        raise ValueError("the writeback field map is empty: map at least one score field")
    unknown = sorted(set(field_map) - set(SCORE_FIELDS))
    if unknown:
        raise ValueError(
            f"unknown score field(s) {', '.join(unknown)} in the writeback field map; "
            f"expected some of {', '.join(SCORE_FIELDS)}"
        )
    targets: dict[str, str] = {}
    for canonical, target in field_map.items():
        if not isinstance(target, str) or not _SF_FIELD.fullmatch(target):
            raise ValueError(
                f"{canonical} maps to {target!r}, which is not a Salesforce field name"
            )
        if target.lower() in _RESERVED_KEYS:
            raise ValueError(f"{canonical} maps to {target!r}, a reserved key of the record")
        if target.lower() in (t.lower() for t in targets.values()):
            raise ValueError(f"Salesforce field {target!r} is the target of two score fields")
        targets[canonical] = target
    return targets


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def float_value(value: Any) -> float | None:
    """A score as a finite float; missing scores become None, which clears the field."""
    if _is_missing(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"a score must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"a score must be a number, got {str(value)[:40]!r}") from None
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise ValueError("a score must be finite, got infinity")
    return round(number, SCORE_DECIMALS)


def text_value(value: Any) -> str | None:
    return None if _is_missing(value) else str(value)


def datetime_value(value: Any) -> str | None:
    """An instant in Salesforce's form, `2024-01-01T00:00:00.000+0000`, always in UTC."""
    if _is_missing(value):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"scored_at is not an ISO 8601 timestamp: {value[:40]!r}") from None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise ValueError(f"scored_at must be a timestamp, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"scored_at {value.isoformat()} has no time zone; scores need UTC")
    utc = value.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="milliseconds") + "+0000"


_CONVERTERS = {
    **dict.fromkeys(FLOAT_FIELDS, float_value),
    **dict.fromkeys(TEXT_FIELDS, text_value),
    **dict.fromkeys(DATETIME_FIELDS, datetime_value),
}


def _floats_at_once(column: pd.Series) -> list[Any] | None:
    """A plain numeric column converted in one go; None when values need checking one by one."""
    if not isinstance(column.dtype, np.dtype) or column.dtype.kind not in "fiu":
        return None
    numbers = column.to_numpy(dtype=np.float64)
    if np.isinf(numbers).any():
        return None
    missing = np.isnan(numbers).tolist()
    return [
        None if gone else round(n, SCORE_DECIMALS)
        for n, gone in zip(numbers.tolist(), missing, strict=True)
    ]


def _datetimes_at_once(column: pd.Series) -> list[Any] | None:
    """A time-zone-aware datetime column formatted in one go, exactly as `datetime_value` does."""
    if not isinstance(column.dtype, pd.DatetimeTZDtype):
        return None
    utc = column.dt.tz_convert(UTC).dt.tz_localize(None).to_numpy().astype("datetime64[ms]")
    values = np.char.add(np.datetime_as_string(utc, unit="ms"), "+0000").astype(object)
    values[np.isnat(utc)] = None
    return values.tolist()


_AT_ONCE = {
    **dict.fromkeys(FLOAT_FIELDS, _floats_at_once),
    **dict.fromkeys(DATETIME_FIELDS, _datetimes_at_once),
}


def _column_values(
    column: pd.Series, canonical: str, external_ids: Sequence[str], entity_type: str
) -> list[Any]:
    """One converted value per row: vectorised for the usual dtypes, else value by value."""
    fast = _AT_ONCE.get(canonical)
    converted = fast(column) if fast is not None else None
    if converted is not None:
        return converted
    convert = _CONVERTERS[canonical]
    values = []
    for external_id, value in zip(external_ids, column.tolist(), strict=True):
        try:
            values.append(convert(value))
        except ValueError as exc:
            raise ValueError(f"{entity_type} {external_id}: {canonical}: {exc}") from None
    return values


def build_records(
    scores: pd.DataFrame, entity_type: str, field_map: Mapping[str, str]
) -> list[Record]:
    """One update record per score row of `entity_type`; rows of other entity types are ignored.

    Raises ValueError on a missing column, a duplicate or empty external id, or a bad value
    (the message names the record), so nothing half-built is ever sent. Values are converted
    column by column (a writeback of 100,000 unchanged records is mostly this function).
    """
    sobject = by_score_type(entity_type).sf_object
    targets = validate_field_map(field_map)
    needed = ["entity_type", "external_id", *targets]
    missing = [column for column in needed if column not in scores.columns]
    if missing:
        raise ValueError(f"score rows lack column(s): {', '.join(missing)}")
    rows = scores.loc[scores["entity_type"] == entity_type, needed[1:]]
    duplicated = rows["external_id"].duplicated()
    if duplicated.any():
        first = rows["external_id"][duplicated].iloc[0]
        raise ValueError(f"external id {first!r} has more than one {entity_type} score row")
    external_ids = rows["external_id"].tolist()
    for external_id in external_ids:
        if not isinstance(external_id, str) or not external_id:
            raise ValueError(f"a {entity_type} score row has no external id ({external_id!r})")
    names = list(targets.values())
    columns = [
        _column_values(rows[canonical], canonical, external_ids, entity_type)
        for canonical in targets
    ]
    records: list[Record] = []
    for external_id, values in zip(external_ids, zip(*columns, strict=True), strict=True):
        record: Record = {"attributes": {"type": sobject}, "id": external_id}
        record.update(zip(names, values, strict=True))
        records.append(record)
    return records


def field_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """The mapped field values of a record: what is compared and remembered, no envelope."""
    return {key: value for key, value in record.items() if key not in _RESERVED_KEYS}


def changed_only(
    records: Sequence[Record], last_written: Mapping[str, Mapping[str, Any]]
) -> list[Record]:
    """The records whose field values differ from those last settled for their id.

    A changed mapping (another target field) counts as a change, since the field set differs.
    """
    return [record for record in records if last_written.get(record["id"]) != field_values(record)]


def batches(records: Sequence[Record], size: int = MAX_BATCH) -> Iterator[list[Record]]:
    """Consecutive slices of at most `size` records (the sObject Collections limit is 200)."""
    if not 1 <= size <= MAX_BATCH:
        raise ValueError(f"batch size must be between 1 and {MAX_BATCH} (got {size})")
    for start in range(0, len(records), size):
        yield list(records[start : start + size])
