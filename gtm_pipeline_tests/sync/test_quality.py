"""Coercion and the three quality gates: what passes, what is rejected and why, and the identity
passed + failed + duplicates_removed == input, down to arbitrary input (hypothesis)."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtm_pipeline.emulator.generate import IMPOSSIBLE_DATES, NUMERIC_DIRT
from gtm_pipeline.sync.coerce import to_date, to_number
from gtm_pipeline.sync.entities import ACCOUNTS, OPPORTUNITIES, PERSONS, Entity
from gtm_pipeline.sync.quality import (
    DEDUPLICATION,
    MAX_INTEGER,
    MAX_TEXT_LENGTH,
    REQUIRED,
    STAGES,
    TYPE_COERCION,
    QualityStats,
    _rows_failing,
    run_gates,
    typed_schema,
)
from gtm_pipeline.sync.transform import to_canonical

STAMPS = [
    "2024-01-01T00:00:00.000+0000",
    "2024-01-01T00:00:01.000+0000",
    "2024-06-30T23:59:59.000+0000",
]

# -- coercion ------------------------------------------------------------------------------------

NUMERIC_EXPECTED = {
    "1,200": 1200.0,
    "$3.5M": 3_500_000.0,
    "N/A": None,
    "12k": 12_000.0,
    "approx. 500": None,
    "-": None,
    "1.200,50": None,
}


def test_every_numeric_dirt_value_of_the_emulator_is_covered_here():
    assert set(NUMERIC_EXPECTED) == set(NUMERIC_DIRT)


@pytest.mark.parametrize("value", NUMERIC_DIRT)
def test_numeric_dirt_is_read_or_left_missing_never_guessed(value):
    out = to_number(pd.Series([value], dtype=object))
    expected = NUMERIC_EXPECTED[value]
    assert (None if pd.isna(out[0]) else float(out[0])) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5.0),
        (5.25, 5.25),
        (-3, -3.0),
        ("5", 5.0),
        (" 7 ", 7.0),
        ("-1,000", -1000.0),
        ("1,234,567.5", 1_234_567.5),
        ("€ 2", 2.0),
        ("£3k", 3000.0),
        ("2.5b", 2.5e9),
        ("3.5 M", 3.5e6),
        ("12,34,567", None),
        ("1,2", None),
        ("inf", None),
        ("-Infinity", None),
        ("nan", None),
        ("0x10", None),
        ("", None),
        (None, None),
    ],
)
def test_clean_and_other_numbers(value, expected):
    out = to_number(pd.Series([value], dtype=object))
    assert str(out.dtype) == "Float64"
    assert (None if pd.isna(out[0]) else float(out[0])) == expected


def test_to_number_keeps_the_index_and_missing_stays_missing():
    values = pd.Series([None, "12k", 3], index=[10, 20, 30], dtype=object)
    out = to_number(values)
    assert out.index.tolist() == [10, 20, 30]
    assert pd.isna(out[10]) and out[20] == 12_000 and out[30] == 3


@pytest.mark.parametrize("value", IMPOSSIBLE_DATES)
def test_impossible_dates_become_missing(value):
    assert pd.isna(to_date(pd.Series([value], dtype=object))[0])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-02-29", "2024-02-29"),
        ("2024-01-01", "2024-01-01"),
        (" 2024-12-31 ", "2024-12-31"),
        ("2024-1-1", None),
        ("01/02/2024", None),
        ("2024-01-01T00:00:00", None),
        ("", None),
        (None, None),
    ],
)
def test_dates_are_read_only_in_iso_form(value, expected):
    out = to_date(pd.Series([value], dtype=object))[0]
    assert (None if pd.isna(out) else out.strftime("%Y-%m-%d")) == expected


# -- the gates -----------------------------------------------------------------------------------


def canonical(entity: Entity, rows: list[dict]) -> pd.DataFrame:
    """Rows given as raw Salesforce records, through the real transform."""
    raw = pd.DataFrame(rows)
    for source in entity.source_fields():
        if source not in raw:
            raw[source] = None
    if "SystemModstamp" not in raw:
        raw["SystemModstamp"] = STAMPS[0]
    raw["SystemModstamp"] = raw["SystemModstamp"].fillna(STAMPS[0])
    return to_canonical(entity, raw)


def assert_identity(stats: QualityStats, n: int) -> None:
    assert stats.input == n
    assert stats.passed + stats.failed + stats.duplicates_removed == n
    assert (
        sum(stats.failed_by_stage.values()) == stats.failed + stats.failed_by_stage[DEDUPLICATION]
    )


def test_required_fields_are_reported_with_the_missing_field():
    frame = canonical(
        ACCOUNTS,
        [
            {"Id": "001A", "Name": "Acme"},
            {"Id": "001B", "Name": "   "},
            {"Id": None, "Name": "No Id"},
        ],
    )
    result = run_gates(ACCOUNTS, frame)
    assert result.clean["external_id"].tolist() == ["001A"]
    failures = result.failures.set_index("row")
    assert failures.loc[1, "stage"] == REQUIRED and failures.loc[1, "field"] == "name"
    assert failures.loc[1, "reason"] == "missing required field(s): name"
    assert failures.loc[2, "field"] == "external_id"
    assert_identity(result.stats, 3)
    assert result.stats.failed_by_stage[REQUIRED] == 2


def test_persons_need_an_email_or_a_full_name():
    frame = canonical(
        PERSONS,
        [
            {"Id": "003A", "Email": "a@x.io"},
            {"Id": "003B", "FirstName": "Ada", "LastName": "Lovelace"},
            {"Id": "003C", "LastName": "Only"},
            {"Id": "003D"},
        ],
    )
    result = run_gates(PERSONS, frame)
    assert sorted(result.clean["external_id"]) == ["003A", "003B"]
    reasons = result.failures.set_index("external_id")["reason"]
    assert reasons["003C"] == (
        "missing required field(s): email, first_name; "
        "needs (external_id, email) or (external_id, first_name, last_name)"
    )
    assert "email, first_name, last_name" in reasons["003D"]


def test_a_repeated_id_keeps_the_newest_version_and_is_not_a_failure():
    frame = canonical(
        PERSONS,
        [
            {"Id": "003A", "Email": "new@x.io", "SystemModstamp": STAMPS[2]},
            {"Id": "003A", "Email": "old@x.io", "SystemModstamp": STAMPS[0]},
            {"Id": "003B", "Email": "b@x.io", "SystemModstamp": STAMPS[1]},
        ],
    )
    result = run_gates(PERSONS, frame)
    assert result.failures.empty
    kept = result.clean.set_index("external_id")["email"]
    assert kept.to_dict() == {"003A": "new@x.io", "003B": "b@x.io"}
    assert result.stats.duplicates_removed == 1
    assert_identity(result.stats, 3)


def test_a_shared_email_is_no_gate_failure_both_twins_pass_normalised():
    """Email twins are marked by the store tenant-wide (store/duplicates.py), not judged on a page:
    both pass the gates with their normalised email, nothing is rejected or removed."""
    frame = canonical(
        PERSONS,
        [
            {"Id": "003OLD", "Email": " Same@X.io ", "SystemModstamp": STAMPS[0]},
            {"Id": "003NEW", "Email": "same@x.io", "SystemModstamp": STAMPS[2]},
            {"Id": "003OTHER", "Email": "other@x.io"},
        ],
    )
    result = run_gates(PERSONS, frame)
    emails = result.clean.set_index("external_id")["email"].to_dict()
    assert emails == {"003OLD": "same@x.io", "003NEW": "same@x.io", "003OTHER": "other@x.io"}
    assert result.failures.empty
    assert result.stats.duplicates_removed == 0 and result.stats.failed == 0
    assert result.stats.failed_by_stage[DEDUPLICATION] == 0
    assert_identity(result.stats, 3)


def test_email_twins_all_pass_whatever_the_order():
    rows = [{"Id": f"003{c}", "Email": "shared@x.io", "SystemModstamp": STAMPS[1]} for c in "QBZA"]
    for seed in range(8):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        result = run_gates(PERSONS, canonical(PERSONS, shuffled))
        assert sorted(result.clean["external_id"]) == ["003A", "003B", "003Q", "003Z"]
        assert result.failures.empty and result.stats.duplicates_removed == 0


def test_type_coercion_parses_numbers_and_dates_and_rejects_what_it_cannot_read():
    frame = canonical(
        OPPORTUNITIES,
        [
            {"Id": "006A", "Name": "A", "AccountId": "001A", "Amount": "$3.5M",
             "CloseDate": "2024-02-29"},
            {"Id": "006B", "Name": "B", "AccountId": "001A", "Amount": "N/A"},
            {"Id": "006C", "Name": "C", "AccountId": "001A", "CloseDate": "2024-02-30"},
            {"Id": "006D", "Name": "D", "AccountId": "001A", "Amount": 1250.5},
        ],
    )  # fmt: skip
    result = run_gates(OPPORTUNITIES, frame)
    clean = result.clean.set_index("external_id")
    assert clean.loc["006A", "amount"] == 3_500_000.0
    assert clean.loc["006A", "close_date"] == pd.Timestamp("2024-02-29")
    assert clean.loc["006D", "amount"] == 1250.5 and pd.isna(clean.loc["006D", "close_date"])
    reasons = result.failures.set_index("external_id")["reason"].to_dict()
    assert reasons == {
        "006B": "amount: cannot read 'N/A' as a number",
        "006C": "close_date: cannot read '2024-02-30' as a date (YYYY-MM-DD)",
    }
    assert set(result.failures["stage"]) == {TYPE_COERCION}


def test_integers_must_be_whole_and_fit_the_store():
    frame = canonical(
        ACCOUNTS,
        [
            {"Id": "001A", "Name": "A", "NumberOfEmployees": "12k"},
            {"Id": "001B", "Name": "B", "NumberOfEmployees": 12.5},
            {"Id": "001C", "Name": "C", "NumberOfEmployees": 3e9},
            {"Id": "001D", "Name": "D", "NumberOfEmployees": 1e30},
            {"Id": "001E", "Name": "E", "NumberOfEmployees": MAX_INTEGER},
        ],
    )
    result = run_gates(ACCOUNTS, frame)
    clean = result.clean.set_index("external_id")["employee_count"]
    assert str(clean.dtype) == "Int64"
    assert clean.to_dict() == {"001A": 12_000, "001E": MAX_INTEGER}
    rejected = result.failures.set_index("external_id")
    assert sorted(rejected.index) == ["001B", "001C", "001D"]
    assert rejected["reason"].str.startswith("employee_count: not a whole number").all()


def test_text_longer_than_the_limit_is_rejected_with_its_length():
    long_name = "x" * (MAX_TEXT_LENGTH + 1)
    frame = canonical(
        ACCOUNTS, [{"Id": "001A", "Name": long_name}, {"Id": "001B", "Name": "y" * MAX_TEXT_LENGTH}]
    )
    result = run_gates(ACCOUNTS, frame)
    assert result.clean["external_id"].tolist() == ["001B"]
    (failure,) = result.failures.to_dict("records")
    assert failure["field"] == "name" and failure["stage"] == TYPE_COERCION
    assert failure["reason"] == f"name: text longer than {MAX_TEXT_LENGTH} characters (256)"


def test_every_column_of_the_type_gate_reports_its_rows_on_one_page():
    """Each column's check is run, whatever an earlier column found (the gate validates column by
    column: a schema validated eagerly as a whole would stop at its first failing column)."""
    long_name = "x" * (MAX_TEXT_LENGTH + 1)
    frame = canonical(
        ACCOUNTS,
        [
            {"Id": "001A", "Name": "A", "NumberOfEmployees": 12.5},
            {"Id": "001B", "Name": long_name, "NumberOfEmployees": 10},
            {"Id": "001C", "Name": "C", "NumberOfEmployees": 3e9},
            {"Id": "001D", "Name": long_name + "y", "NumberOfEmployees": 11},
            {"Id": "001E", "Name": "E", "NumberOfEmployees": 12},
        ],
    )
    result = run_gates(ACCOUNTS, frame)
    assert result.clean["external_id"].tolist() == ["001E"]
    fields = result.failures.set_index("external_id")["field"].to_dict()
    assert fields == {"001A": "employee_count", "001B": "name", "001C": "employee_count",
                      "001D": "name"}  # fmt: skip


def test_a_gate_that_cannot_check_its_column_raises_instead_of_passing_the_page():
    """A failure without rows (here a column of the wrong type) is a bug in the gates: it must
    not read as "no row failed"."""
    wrong_type = pd.DataFrame({"employee_count": ["12"]})
    schema = typed_schema(ACCOUNTS, ()).columns["employee_count"]
    with pytest.raises(RuntimeError, match="could not check"):
        _rows_failing(schema, wrong_type)


def test_each_rejected_row_is_reported_once_even_with_several_problems():
    frame = canonical(
        OPPORTUNITIES,
        [{"Id": "006A", "Name": "n" * 300, "AccountId": "001A", "Amount": "N/A", "CloseDate": "x"}],
    )
    result = run_gates(OPPORTUNITIES, frame)
    assert len(result.failures) == 1 and result.stats.failed == 1
    assert_identity(result.stats, 1)


def test_an_empty_page_passes_nothing_and_fails_nothing():
    frame = canonical(PERSONS, [{"Id": "003A", "Email": "a@x.io"}]).iloc[0:0]
    result = run_gates(PERSONS, frame)
    assert result.clean.empty and result.failures.empty
    assert_identity(result.stats, 0)


def test_stats_add_up_across_pages():
    total = QualityStats()
    for rows in (
        [{"Id": "003A", "Email": "a@x.io"}, {"Id": "003B"}],
        [{"Id": "003C", "Email": "c@x"}],
    ):
        total.add(run_gates(PERSONS, canonical(PERSONS, rows)).stats)
    assert total.as_dict() == {
        "input": 3,
        "passed": 2,
        "failed": 1,
        "duplicates_removed": 0,
        "failed_by_stage": {REQUIRED: 1, DEDUPLICATION: 0, TYPE_COERCION: 0},
    }


# -- property: arbitrary values never make a gate raise, and nothing is lost ---------------------

ANY_VALUE = st.one_of(
    st.none(),
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8),
    st.integers(min_value=-(10**22), max_value=10**22),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(NUMERIC_DIRT + IMPOSSIBLE_DATES + ("", "  ", "2024-02-29", "A@B.C")),
)
IDS = st.one_of(st.none(), st.sampled_from(["A1", "A2", "A3", "B1", "B2", " ", ""]))


@st.composite
def raw_pages(draw):
    entity = draw(st.sampled_from([ACCOUNTS, PERSONS, OPPORTUNITIES]))
    n = draw(st.integers(min_value=0, max_value=25))
    rows = []
    for _ in range(n):
        row = {source: draw(ANY_VALUE) for source in entity.source_fields()}
        row["Id"] = draw(IDS)
        row["SystemModstamp"] = draw(st.sampled_from(STAMPS))
        if draw(st.booleans()):
            row["Extra__c"] = draw(ANY_VALUE)
        rows.append(row)
    columns = [*entity.source_fields(), "SystemModstamp"]
    return entity, pd.DataFrame(rows, columns=columns if not rows else None, dtype=object)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_pages())
def test_gates_never_raise_and_account_for_every_input_row(page):
    entity, raw = page
    frame = to_canonical(entity, raw)
    result = run_gates(entity, frame)
    stats = result.stats
    assert stats.input == len(raw)
    assert stats.passed == len(result.clean)
    assert stats.failed + stats.failed_by_stage[DEDUPLICATION] == len(result.failures)
    assert stats.passed + stats.failed + stats.duplicates_removed == len(raw)
    assert set(result.failures["stage"]) <= set(STAGES)
    assert result.failures["row"].is_unique
    assert result.failures["row"].between(0, max(len(raw) - 1, 0)).all()
    assert result.clean["external_id"].is_unique if len(result.clean) else True
    assert result.failures["reason"].map(lambda r: isinstance(r, str) and r != "").all()
    for column in entity.integer_columns:
        values = result.clean[column].dropna().astype("float64")
        assert (values.abs() <= MAX_INTEGER).all() and (values == np.round(values)).all()
    for column in entity.number_columns:
        assert np.isfinite(result.clean[column].dropna().astype("float64")).all()


def test_a_valid_record_does_not_lose_its_email_to_a_newer_record_that_fails_anyway():
    rows = [
        {"Id": "003A", "Email": "ann@x.io", "SystemModstamp": "2024-01-01T00:00:00.000+0000"},
        {
            "Id": "003B",
            "Email": " ANN@x.io ",
            "Title": "x" * 300,
            "SystemModstamp": "2024-02-01T00:00:00.000+0000",
        },
    ]
    result = run_gates(PERSONS, canonical(PERSONS, rows))
    assert list(result.clean["external_id"]) == ["003A"]
    [failure] = result.failures.to_dict("records")
    assert (failure["external_id"], failure["stage"]) == ("003B", TYPE_COERCION)
    assert_identity(result.stats, 2)


def test_the_newest_version_of_a_repeated_record_is_the_one_judged():
    rows = [
        {"Id": "003A", "Email": "ann@x.io", "SystemModstamp": "2024-01-01T00:00:00.000+0000"},
        {"Id": "003A", "Email": None, "SystemModstamp": "2024-02-01T00:00:00.000+0000"},
    ]
    result = run_gates(PERSONS, canonical(PERSONS, rows))
    assert result.clean.empty
    [failure] = result.failures.to_dict("records")
    assert (failure["row"], failure["stage"]) == (1, REQUIRED)
    assert result.stats.duplicates_removed == 1
    assert_identity(result.stats, 2)


def test_a_page_without_a_typed_column_is_judged_on_the_columns_it_has():
    """A mapping that fills no `employee_count` leaves nothing for that column's check."""
    long_name = "x" * (MAX_TEXT_LENGTH + 1)
    frame = canonical(ACCOUNTS, [{"Id": "001A", "Name": "A"}, {"Id": "001B", "Name": long_name}])
    result = run_gates(ACCOUNTS, frame.drop(columns=["employee_count"]))
    assert result.clean["external_id"].tolist() == ["001A"]
    assert result.failures["field"].tolist() == ["name"]
