"""Quarantine rows from `prepare.failure_records`: the values as read, every one JSON-able; and
`gate_page` refusing to run with Pandera's checks switched off."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pandera.config import ValidationDepth, config_context

from gtm_pipeline.config import ConfigError
from gtm_pipeline.sync.entities import PERSONS
from gtm_pipeline.sync.prepare import failure_records, gate_page


def test_raw_values_are_json_ready_whatever_the_column_type() -> None:
    values = pd.DataFrame(
        {
            "external_id": pd.array(["003A", None, "003C"], dtype="string[pyarrow]"),
            "email": pd.array(["a@x.io", "b@x.io", pd.NA], dtype="string[pyarrow]"),
            "employees": pd.array([10, None, 3], dtype="Int64"),
            "revenue": [1.5, np.nan, 2.0],
            "stamp": pd.to_datetime(
                ["2026-01-02T03:04:05Z", None, "2026-01-02T03:04:05.5Z"], format="ISO8601"
            ),
            "is_deleted": [False, True, False],
            "custom_fields": [None, {"Tier__c": "A"}, None],
            "anything": pd.Series([np.int64(7), "text", None], dtype=object),
        }
    )
    failures = pd.DataFrame(
        {
            "row": [2, 1],
            "external_id": [None, "003B"],
            "stage": ["type_coercion", "required_fields"],
            "field": ["employees", "email"],
            "reason": ["r1", "r2"],
        }
    )
    rows = failure_records(failures, values)
    assert [r["external_id"] for r in rows] == ["(no id, row 2)", "003B"]
    assert rows[0]["raw"] == {
        "external_id": "003C",
        "email": None,
        "employees": 3,
        "revenue": 2.0,
        "stamp": "2026-01-02T03:04:05.500000+00:00",
        "is_deleted": False,
        "custom_fields": None,
        "anything": None,
    }
    assert rows[1]["raw"] == {
        "external_id": None,
        "email": "b@x.io",
        "employees": None,
        "revenue": None,
        "stamp": None,
        "is_deleted": True,
        "custom_fields": {"Tier__c": "A"},
        "anything": "text",
    }
    assert type(rows[0]["raw"]["employees"]) is int
    json.dumps(rows, allow_nan=False)  # what the quarantine table stores


def test_no_failures_make_no_rows() -> None:
    empty = pd.DataFrame(columns=["row", "external_id", "stage", "field", "reason"])
    assert failure_records(empty, pd.DataFrame({"external_id": ["003A"]})) == []


@pytest.mark.parametrize(
    "switch", [{"validation_enabled": False}, {"validation_depth": ValidationDepth.SCHEMA_ONLY}]
)
def test_pandera_switched_off_stops_the_gates_instead_of_passing_every_record(switch) -> None:
    """Pandera's own settings (`PANDERA_VALIDATION_ENABLED`, `PANDERA_VALIDATION_DEPTH`) would
    skip the checks the gates are made of: a page with a record missing its required fields must
    not be loaded as clean."""
    raw = pd.DataFrame(
        {"Id": ["003000000000001AAA"], "SystemModstamp": ["2024-01-01T00:00:00.000+0000"]}
    )
    assert len(gate_page(PERSONS, raw).rejected) == 1
    with config_context(**switch), pytest.raises(ConfigError, match="PANDERA_VALIDATION"):
        gate_page(PERSONS, raw)
