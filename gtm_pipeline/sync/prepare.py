"""A raw page made ready to load, no I/O: raw schema, mapping, quality gates, quarantine rows.

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

from gtm_pipeline.sync.entities import Entity, FieldMapping
from gtm_pipeline.sync.quality import QualityResult, run_gates
from gtm_pipeline.sync.raw_schemas import validate_raw
from gtm_pipeline.sync.transform import to_canonical


@dataclass(frozen=True)
class PreparedPage:
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
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def failure_records(failures: pd.DataFrame, values: pd.DataFrame) -> list[dict[str, Any]]:
    """Quarantine rows for `failures` (by row position in `values`) with the values as read."""
    if failures.empty:
        return []
    raw = values.loc[failures["row"]].astype("object")
    raw_rows = [{k: _json_value(v) for k, v in row.items()} for row in raw.to_dict("records")]
    records = []
    for failure, row in zip(failures.to_dict("records"), raw_rows, strict=True):
        external_id = failure["external_id"]
        if external_id is None or (isinstance(external_id, float) and math.isnan(external_id)):
            external_id = f"(no id, row {failure['row']})"
        records.append({**failure, "external_id": str(external_id), "raw": row})
    return records


def prepare_page(
    entity: Entity,
    raw: pd.DataFrame,
    mappings: Sequence[FieldMapping] | None = None,
    *,
    tenant_id: str | None = None,
) -> PreparedPage:
    valid, raw_failures = validate_raw(entity, raw)
    canonical = to_canonical(entity, valid, mappings, tenant_id=tenant_id)
    result = run_gates(entity, canonical)
    rejected = failure_records(raw_failures, raw) + failure_records(result.failures, canonical)
    seen = raw["Id"].dropna().astype("str").tolist() if "Id" in raw else []
    return PreparedPage(canonical, result, rejected, seen, len(raw_failures))
