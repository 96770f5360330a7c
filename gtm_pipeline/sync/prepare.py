"""A fetched page through the gates, no I/O: raw schema, mapping, quality gates, quarantine rows.

Everything that decides what is loaded and what is quarantined happens here, so it can be tested
(and benchmarked) without Salesforce or a database.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd
from pandera.config import ValidationDepth, get_config_context

from gtm_pipeline.config import ConfigError
from gtm_pipeline.sync.entities import Entity, FieldMapping
from gtm_pipeline.sync.quality import QualityResult, run_gates
from gtm_pipeline.sync.raw_schemas import validate_raw
from gtm_pipeline.sync.transform import to_canonical


@dataclass(frozen=True)
class GatedPage:
    """A fetched page past the raw contract, the mapping and the quality gates: the clean rows
    and the rejected ones, not yet converted for the store (`load.ConvertedPage`)."""

    canonical: pd.DataFrame
    """Every record that kept the raw contract, as canonical columns before coercion."""
    result: QualityResult
    rejected: list[dict[str, Any]]
    """Quarantine rows: external_id, stage, field, reason and the values as read (`raw`)."""
    seen_ids: list[str]
    """Every Id on the page, so records that pass now leave the quarantine."""
    raw_rejected: int


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        # NaN is a missing value; an infinity (a Bulk CSV's 1e999) is kept as text: JSON has none.
        return None if math.isnan(value) else str(value)
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    return value


def _json_column(series: pd.Series) -> list[Any]:
    """A column's values as JSON-able Python values, missing ones as None."""
    if isinstance(series.dtype, pd.StringDtype):  # text needs no per-value work
        return series.to_numpy(dtype=object, na_value=None).tolist()
    return [_json_value(value) for value in series.astype("object").tolist()]


def _row_dicts(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of JSON-able values, built column by column: a third faster than
    `to_dict("records")` on an object copy of the frame (879 rejected rows: 28 → 19 ms)."""
    if frame.columns.empty:
        return [{} for _ in range(len(frame))]
    columns = {str(name): _json_column(frame[name]) for name in frame.columns}
    cells = zip(*columns.values(), strict=True)
    return [dict(zip(columns, row, strict=True)) for row in cells]


def _stamps(values: pd.DataFrame) -> list[datetime | None]:
    """Each row's SystemModstamp as an aware datetime: the canonical column, or the raw field
    read leniently (a raw record may be quarantined precisely because its stamp is unreadable)."""
    if "system_modstamp" in values:
        stamps = values["system_modstamp"]
    elif "SystemModstamp" in values:
        raw = values["SystemModstamp"]
        stamps = pd.to_datetime(raw, utc=True, format="ISO8601", errors="coerce")
    else:
        return [None] * len(values)
    return [None if pd.isna(s) else s.to_pydatetime() for s in stamps]


def failure_records(failures: pd.DataFrame, values: pd.DataFrame) -> list[dict[str, Any]]:
    """Quarantine rows for `failures` (by row position in `values`) with the values as read and
    the version's `system_modstamp`."""
    if failures.empty:
        return []
    failed = values.loc[failures["row"]]
    raw_rows = _row_dicts(failed)
    records = []
    for failure, row, stamp in zip(
        failures.to_dict("records"), raw_rows, _stamps(failed), strict=True
    ):
        external_id = failure["external_id"]
        if external_id is None or (isinstance(external_id, float) and math.isnan(external_id)):
            external_id = f"(no id, row {failure['row']})"
        records.append(
            {**failure, "external_id": str(external_id), "raw": row, "system_modstamp": stamp}
        )
    return records


def require_pandera_checks() -> None:
    """Refuse to gate with Pandera's checks switched off. The gates are Pandera checks, so
    `PANDERA_VALIDATION_ENABLED=False` or `PANDERA_VALIDATION_DEPTH=SCHEMA_ONLY` in the
    environment would let every record through unjudged (or, the type gate validating column by
    column, some gates and not others)."""
    config = get_config_context()
    if not config.validation_enabled or config.validation_depth == ValidationDepth.SCHEMA_ONLY:
        raise ConfigError(
            "PANDERA_VALIDATION_ENABLED=False or PANDERA_VALIDATION_DEPTH=SCHEMA_ONLY switches "
            "off the checks the quality gates are made of: unset them for gtm-pipeline"
        )


def gate_page(
    entity: Entity,
    raw: pd.DataFrame,
    mappings: Sequence[FieldMapping] | None = None,
    *,
    tenant_id: str | None = None,
) -> GatedPage:
    """`raw` (a fetched page's frame) through the raw contract, the mapping and the gates."""
    require_pandera_checks()
    valid, raw_failures = validate_raw(entity, raw)
    canonical = to_canonical(entity, valid, mappings, tenant_id=tenant_id)
    result = run_gates(entity, canonical)
    rejected = failure_records(raw_failures, raw) + failure_records(result.failures, canonical)
    seen = raw["Id"].dropna().astype("str").tolist() if "Id" in raw else []
    return GatedPage(canonical, result, rejected, seen, len(raw_failures))
