"""The raw Salesforce record schemas: the contract checked before mapping."""

from __future__ import annotations

import pandas as pd
import pytest

from gtm_pipeline.sync.entities import ACCOUNTS, OPPORTUNITIES, PERSONS
from gtm_pipeline.sync.prepare import gate_page
from gtm_pipeline.sync.raw_schemas import RAW_SCHEMA, validate_raw

GOOD_ID = "003RO000003RzQiYAK"
STAMP = "2024-01-01T00:00:00.000+0000"


def frame(**columns) -> pd.DataFrame:
    base = {"Id": [GOOD_ID], "SystemModstamp": [STAMP]}
    return pd.DataFrame({**base, **columns})


def test_valid_records_pass_and_unknown_columns_are_kept():
    raw = frame(Email=["a@x.io"], Region__c=["EMEA"], AccountId=["001RO000003RzQiYAK"])
    valid, failures = validate_raw(PERSONS, raw)
    assert failures.empty
    assert list(valid.columns) == list(raw.columns)


@pytest.mark.parametrize(
    "column, value",
    [
        ("Id", None),
        ("Id", "003-not-an-id"),
        ("Id", "003RO000003RzQ"),  # 14 characters
        ("SystemModstamp", "yesterday"),
        ("SystemModstamp", None),
        ("AccountId", "Acme Corp"),
    ],
)
def test_contract_breaches_are_rejected_with_a_reason(column, value):
    raw = pd.concat([frame(AccountId=[None]), frame(AccountId=[None])], ignore_index=True)
    raw.loc[1, column] = value
    valid, failures = validate_raw(PERSONS, raw)
    assert list(valid.index) == [0]
    [failure] = failures.to_dict("records")
    assert failure["row"] == 1 and failure["stage"] == RAW_SCHEMA and failure["field"] == column
    assert column in failure["reason"]


@pytest.mark.parametrize("entity", [ACCOUNTS, PERSONS, OPPORTUNITIES])
def test_a_page_without_id_or_modstamp_columns_is_an_error(entity):
    with pytest.raises(ValueError, match="SystemModstamp"):
        validate_raw(entity, pd.DataFrame({"Id": [GOOD_ID]}))


def test_gate_page_quarantines_raw_breaches_and_still_sees_their_ids():
    raw = pd.DataFrame(
        {
            "Id": [GOOD_ID, "003RO000003RzQjYAK"],
            "SystemModstamp": [STAMP, "not a time"],
            "Email": ["a@x.io", "b@x.io"],
        }
    )
    page = gate_page(PERSONS, raw)
    assert page.raw_rejected == 1
    assert page.seen_ids == [GOOD_ID, "003RO000003RzQjYAK"]
    [rejected] = page.rejected
    assert rejected["stage"] == RAW_SCHEMA and rejected["external_id"] == "003RO000003RzQjYAK"
    assert rejected["raw"]["Email"] == "b@x.io"
    assert list(page.result.clean["external_id"]) == [GOOD_ID]


def test_numbers_where_ids_belong_are_quarantined_with_their_value_not_a_crash():
    frame = pd.DataFrame(
        {"Id": [5, 6], "SystemModstamp": ["2024-01-01T00:00:00.000+0000", None]}, dtype=object
    )
    kept, failures = validate_raw(PERSONS, frame)
    assert kept.empty
    assert failures["external_id"].tolist() == ["5", "6"]
    assert set(failures["field"]) == {"Id"} and set(failures["stage"]) == {RAW_SCHEMA}


def test_an_empty_page_passes_the_contract_untouched():
    frame = pd.DataFrame({"Id": [], "SystemModstamp": []}, dtype=object)
    kept, failures = validate_raw(PERSONS, frame)
    assert kept.empty and failures.empty
