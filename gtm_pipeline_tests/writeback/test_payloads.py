"""Payload building, diffing and batching: pure functions, no emulator, no store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gtm_pipeline.writeback.payloads import (
    batches,
    build_records,
    changed_only,
    datetime_value,
    field_values,
    float_value,
)

FIELD_MAP = {
    "fit_score": "Fit_Score__c",
    "engagement_score": "Engagement_Score__c",
    "combined_score": "Combined_Score__c",
    "tier": "Tier__c",
    "scored_at": "Scored_At__c",
}


def _scores(rows: list[dict]) -> pd.DataFrame:
    base = {
        "entity_type": "person",
        "fit_score": 1.0,
        "engagement_score": 2.0,
        "combined_score": 3.0,
        "tier": "A",
        "scored_at": datetime(2024, 1, 1, tzinfo=UTC),
    }
    return pd.DataFrame([{**base, **row} for row in rows])


def test_records_carry_type_id_and_converted_values() -> None:
    df = _scores(
        [
            {"external_id": "003A", "fit_score": "81.5", "tier": "B"},
            {"external_id": "003B", "engagement_score": float("nan"), "tier": None},
        ]
    )
    records = build_records(df, "person", FIELD_MAP)
    assert records[0] == {
        "attributes": {"type": "Contact"},
        "id": "003A",
        "Fit_Score__c": 81.5,
        "Engagement_Score__c": 2.0,
        "Combined_Score__c": 3.0,
        "Tier__c": "B",
        "Scored_At__c": "2024-01-01T00:00:00.000+0000",
    }
    assert records[1]["Engagement_Score__c"] is None
    assert records[1]["Tier__c"] is None
    json.dumps(records, allow_nan=False)  # the body must be strict JSON


def test_only_mapped_fields_and_rows_of_the_entity_type() -> None:
    df = _scores([{"external_id": "001A", "entity_type": "account"}, {"external_id": "003A"}])
    records = build_records(df, "account", {"combined_score": "Combined_Score__c"})
    assert records == [{"attributes": {"type": "Account"}, "id": "001A", "Combined_Score__c": 3.0}]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 3, 5, 6, 7, 8, 123456, tzinfo=UTC), "2024-03-05T06:07:08.123+0000"),
        (
            datetime(2024, 3, 5, 8, 7, 8, tzinfo=timezone(timedelta(hours=2))),
            "2024-03-05T06:07:08.000+0000",
        ),
        (pd.Timestamp("2024-03-05T06:07:08Z"), "2024-03-05T06:07:08.000+0000"),
        ("2024-03-05T06:07:08Z", "2024-03-05T06:07:08.000+0000"),
        (pd.NaT, None),
    ],
)
def test_scored_at_becomes_salesforce_datetime_in_utc(value, expected) -> None:
    assert datetime_value(value) == expected


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"external_id": "003A", "fit_score": "high"}, "fit_score: a score must be a number"),
        ({"external_id": "003A", "fit_score": float("inf")}, "must be finite"),
        ({"external_id": "003A", "scored_at": datetime(2024, 1, 1)}, "has no time zone"),
        ({"external_id": ""}, "has no external id"),
    ],
)
def test_bad_values_are_refused_with_the_record_named(row, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_records(_scores([row]), "person", FIELD_MAP)


def test_duplicate_ids_and_missing_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="more than one person score row"):
        build_records(
            _scores([{"external_id": "003A"}, {"external_id": "003A"}]), "person", FIELD_MAP
        )
    with pytest.raises(ValueError, match="lack column"):
        build_records(_scores([{"external_id": "003A"}]).drop(columns="tier"), "person", FIELD_MAP)


@pytest.mark.parametrize(
    ("field_map", "message"),
    [
        ({}, "field map is empty"),
        ({"fitScore": "Fit_Score__c"}, "unknown score field"),
        ({"fit_score": "Fit Score"}, "not a Salesforce field name"),
        ({"fit_score": "Id"}, "reserved key"),
        ({"fit_score": "X__c", "combined_score": "x__c"}, "target of two score fields"),
    ],
)
def test_bad_field_maps_are_refused(field_map, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_records(_scores([{"external_id": "003A"}]), "person", field_map)


def test_unknown_entity_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown entity type 'campaign'"):
        build_records(_scores([{"external_id": "003A"}]), "campaign", FIELD_MAP)


def test_changed_only_compares_with_last_written_values_after_a_json_round_trip() -> None:
    records = build_records(
        _scores([{"external_id": f"003{i}", "fit_score": i / 3} for i in range(4)]),
        "person",
        FIELD_MAP,
    )
    last = {r["id"]: json.loads(json.dumps(field_values(r))) for r in records[:3]}
    last["0031"] = {**last["0031"], "Fit_Score__c": 99.0}
    last["0032"] = {k: v for k, v in last["0032"].items() if k != "Tier__c"}  # mapping changed
    assert [r["id"] for r in changed_only(records, last)] == ["0031", "0032", "0033"]


@given(st.integers(min_value=0, max_value=1000), st.integers(min_value=1, max_value=200))
def test_batches_keep_order_and_respect_the_size(count: int, size: int) -> None:
    records = [{"id": str(i)} for i in range(count)]
    sliced = list(batches(records, size))
    assert [r for batch in sliced for r in batch] == records
    assert all(1 <= len(batch) <= size for batch in sliced)


def test_batches_refuse_more_than_the_collection_limit() -> None:
    with pytest.raises(ValueError, match="between 1 and 200"):
        list(batches([{"id": "1"}], 201))


_AWARE = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
_SCORE = st.one_of(st.floats(allow_infinity=False), st.integers(-(2**40), 2**40))


@given(
    st.lists(st.tuples(_SCORE, st.one_of(st.none(), _AWARE)), min_size=1, max_size=30),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_whole_columns_convert_exactly_like_single_values(rows, offset_minutes: int) -> None:
    """build_records converts typed columns at once; the result must equal value-by-value."""
    zone = timezone(timedelta(minutes=offset_minutes))
    scored_at = pd.Series(pd.to_datetime([at for _, at in rows], utc=True)).dt.tz_convert(zone)
    df = _scores([{"external_id": f"003{i}"} for i in range(len(rows))]).assign(
        fit_score=pd.Series([score for score, _ in rows]), scored_at=scored_at
    )
    assert isinstance(df["scored_at"].dtype, pd.DatetimeTZDtype)
    records = build_records(df, "person", {"fit_score": "F__c", "scored_at": "S__c"})
    for record, (score, at) in zip(records, rows, strict=True):
        assert record["F__c"] == float_value(score)
        assert record["S__c"] == datetime_value(at)
    json.dumps(records, allow_nan=False)
