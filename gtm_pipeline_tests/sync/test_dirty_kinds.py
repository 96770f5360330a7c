"""Every kind of dirt the emulator plants is caught by the right gate with the right reason, and
no clean record is rejected: the ground truth (`Org.truth`, `_dirty`) against `gate_page`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from gtm_pipeline.emulator.generate import DIRTY_KINDS, DUPLICATE_ID
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.store.tables import persons
from gtm_pipeline.sync.coerce import to_number
from gtm_pipeline.sync.entities import ACCOUNTS, OPPORTUNITIES, PERSONS, Entity
from gtm_pipeline.sync.extract import flatten_records
from gtm_pipeline.sync.load import convert_page, load_page
from gtm_pipeline.sync.prepare import GatedPage, gate_page
from gtm_pipeline.sync.quality import DEDUPLICATION, MAX_TEXT_LENGTH, REQUIRED, TYPE_COERCION
from gtm_pipeline.sync.soql import modified_query

COUNTS = {"Account": 300, "Contact": 2000, "Opportunity": 600}
DIRTY_RATIO = 0.35
ENTITIES = {"Account": ACCOUNTS, "Contact": PERSONS, "Opportunity": OPPORTUNITIES}
# The canonical column each object's dirt lands in, per kind (the generator's choice of field).
NUMERIC_FIELDS = {"NumberOfEmployees": "employee_count", "AnnualRevenue": "annual_revenue",
                  "Amount": "amount"}  # fmt: skip
LONG_FIELD = {"Account": "name", "Contact": "title", "Opportunity": "name"}
MAPPED_SOURCE = {"Account": "Name", "Contact": "Title", "Opportunity": "Name"}
MISSING_FIELD = {"Account": "name", "Contact": "email", "Opportunity": "account_external_id"}


@dataclass(frozen=True)
class Outcome:
    truth: dict[str, dict[str, Any]]
    page: GatedPage
    rejected: dict[str, dict[str, Any]]
    clean: pd.DataFrame


@pytest.fixture(scope="module")
def org() -> Org:
    return Org.generate(seed=23, counts=COUNTS, dirty_ratio=DIRTY_RATIO)


@pytest.fixture(scope="module")
def outcomes(org) -> dict[str, Outcome]:
    out = {}
    for sobject, entity in ENTITIES.items():
        out[sobject] = _run(org, sobject, entity)
    return out


def _run(org: Org, sobject: str, entity: Entity) -> Outcome:
    fields = list(dict.fromkeys(["Id", *entity.source_fields(), "SystemModstamp"]))
    result = org.execute_query(modified_query(sobject, fields, None), include_deleted=False)
    frame = flatten_records(result.page(0, result.total_size))
    page = gate_page(entity, frame)
    truth = {r["Id"]: r for r in org.truth(sobject)}
    rejected = {r["external_id"]: r for r in page.rejected}
    assert len(rejected) == len(page.rejected), "a record was rejected twice"
    return Outcome(truth, page, rejected, page.result.clean.set_index("external_id"))


def _overlong(sobject: str, record: dict[str, Any]) -> str | None:
    """The canonical text column whose value is longer than the store takes, if any.

    Opportunity names embed their account's name, so an account's long-string dirt is inherited
    by opportunities the ground truth calls clean (and a short title repeated 30 times is not
    long): what is too long is read from the values, not from the label.
    """
    for mapping in ENTITIES[sobject].mappings:
        value = record.get(mapping.source)
        if isinstance(value, str) and len(value.strip()) > MAX_TEXT_LENGTH:
            return mapping.target
    return None


def _dirty(outcome: Outcome, kind: str, sobject: str | None = None) -> list[dict[str, Any]]:
    """Records planted with `kind`; with `sobject`, those whose values are not also over-long."""
    found = [r for r in outcome.truth.values() if r.get("_dirty") == kind]
    return [r for r in found if sobject is None or _overlong(sobject, r) is None]


def test_the_org_carries_every_kind_of_dirt(org, outcomes):
    for sobject, kinds in DIRTY_KINDS.items():
        planted = Counter(r.get("_dirty") for r in outcomes[sobject].truth.values())
        assert all(planted[kind] > 0 for kind in (*kinds, DUPLICATE_ID)), (sobject, planted)


@pytest.mark.parametrize("sobject", list(ENTITIES))
def test_missing_required_fields_fail_the_required_gate(outcomes, sobject):
    outcome = outcomes[sobject]
    for record in _dirty(outcome, "missing_required"):
        failure = outcome.rejected[record["Id"]]
        assert failure["stage"] == REQUIRED
        assert failure["field"] == MISSING_FIELD[sobject]
        assert failure["reason"].startswith("missing required field(s): ")
        assert MISSING_FIELD[sobject] in failure["reason"]


@pytest.mark.parametrize("sobject", ["Account", "Opportunity"])
def test_numeric_strings_are_read_when_unambiguous_and_rejected_otherwise(outcomes, sobject):
    outcome = outcomes[sobject]
    read = unreadable = 0
    for record in _dirty(outcome, "numeric_string", sobject):
        dirty_fields = [f for f in NUMERIC_FIELDS if isinstance(record.get(f), str)]
        if not dirty_fields:  # the dirt is in a field the default mapping does not sync
            assert record["Id"] in outcome.clean.index
            continue
        (source,) = dirty_fields
        column, value = NUMERIC_FIELDS[source], record[source]
        number = to_number(pd.Series([value], dtype=object))[0]
        if pd.isna(number):
            unreadable += 1
            failure = outcome.rejected[record["Id"]]
            assert failure["stage"] == TYPE_COERCION and failure["field"] == column
            assert failure["reason"] == f"{column}: cannot read {value!r} as a number"
            assert failure["raw"][column] == value
        else:
            read += 1
            assert record["Id"] not in outcome.rejected
            assert float(outcome.clean.loc[record["Id"], column]) == float(number)
    assert read and unreadable


def test_a_thousands_separator_is_stored_as_the_number(outcomes):
    outcome = outcomes["Account"]
    examples = [r for r in _dirty(outcome, "numeric_string") if "1,200" in r.values()]
    assert examples
    for record in examples:
        column = next(NUMERIC_FIELDS[f] for f in NUMERIC_FIELDS if record.get(f) == "1,200")
        assert outcome.clean.loc[record["Id"], column] == 1200


def test_impossible_dates_fail_type_coercion(outcomes):
    outcome = outcomes["Opportunity"]
    records = _dirty(outcome, "impossible_date")
    assert records
    for record in records:
        failure = outcome.rejected[record["Id"]]
        assert failure["stage"] == TYPE_COERCION and failure["field"] == "close_date"
        expected = f"close_date: cannot read {record['CloseDate']!r} as a date (YYYY-MM-DD)"
        assert failure["reason"] == expected


@pytest.mark.parametrize("sobject", list(ENTITIES))
def test_over_long_text_fails_type_coercion_with_its_length(outcomes, sobject):
    outcome = outcomes[sobject]
    long_ones = [r for r in outcome.truth.values() if _overlong(sobject, r)]
    assert long_ones
    for record in long_ones:
        failure = outcome.rejected[record["Id"]]
        if record.get("_dirty") == "missing_required":
            assert failure["stage"] == REQUIRED  # the first gate that fails reports it
            continue
        column = _overlong(sobject, record)
        assert failure["stage"] == TYPE_COERCION
        if failure["field"] != column:  # one failure per record: an unreadable value came first
            assert record.get("_dirty") in ("numeric_string", "impossible_date")
            continue
        length = len(failure["raw"][column])
        assert failure["reason"] == (
            f"{column}: text longer than {MAX_TEXT_LENGTH} characters ({length})"
        )


@pytest.mark.parametrize("sobject", list(ENTITIES))
def test_long_string_dirt_within_the_limit_passes_intact(outcomes, sobject):
    outcome = outcomes[sobject]
    column = LONG_FIELD[sobject]
    for record in _dirty(outcome, "long_string", sobject):
        assert record["Id"] not in outcome.rejected
        assert outcome.clean.loc[record["Id"], column] == record[MAPPED_SOURCE[sobject]].strip()


def test_only_long_string_dirt_is_over_long():
    org = Org.generate(seed=23, counts=COUNTS, dirty_ratio=DIRTY_RATIO)
    for sobject in ENTITIES:
        for record in org.truth(sobject):
            assert (_overlong(sobject, record) is not None) == (
                record.get("_dirty") == "long_string"
            )


@pytest.mark.parametrize("sobject", list(ENTITIES))
def test_padded_strings_pass_trimmed(outcomes, sobject):
    outcome = outcomes[sobject]
    entity = ENTITIES[sobject]
    records = _dirty(outcome, "padded_string", sobject)
    assert records
    for record in records:
        assert record["Id"] not in outcome.rejected
        stored = outcome.clean.loc[record["Id"]]
        for mapping in entity.mappings:
            value = record.get(mapping.source)
            if isinstance(value, str) and value != value.strip():
                expected = value.strip()
                if mapping.target in entity.email_columns:
                    expected = expected.lower()
                assert stored[mapping.target] == expected


@pytest.mark.parametrize("sobject", list(ENTITIES))
def test_non_latin_text_passes_intact(outcomes, sobject):
    outcome = outcomes[sobject]
    entity = ENTITIES[sobject]
    records = _dirty(outcome, "non_latin", sobject)
    assert records
    for record in records:
        assert record["Id"] not in outcome.rejected
        stored = outcome.clean.loc[record["Id"]]
        for mapping in entity.mappings:
            value = record.get(mapping.source)
            if isinstance(value, str) and not value.isascii():
                assert stored[mapping.target] == value


@pytest.mark.parametrize("sobject", list(ENTITIES))
def test_ids_served_twice_are_removed_once_and_counted(outcomes, sobject):
    outcome = outcomes[sobject]
    repeated = _dirty(outcome, DUPLICATE_ID)
    assert repeated
    served = Counter(outcome.page.canonical["external_id"])
    assert all(served[r["Id"]] == 2 for r in repeated)
    assert outcome.clean.index.is_unique
    for record in _dirty(outcome, DUPLICATE_ID, sobject):
        assert record["Id"] in outcome.clean.index
        assert record["Id"] not in outcome.rejected
    stats = outcome.page.result.stats
    assert stats.duplicates_removed == len(repeated)  # repeated ids only: email twins are kept
    assert stats.failed_by_stage[DEDUPLICATION] == 0


def _email_groups(outcome: Outcome) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in outcome.truth.values():
        if record.get("Email"):
            groups.setdefault(record["Email"].strip().lower(), []).append(record)
    return {k: v for k, v in groups.items() if len(v) > 1}


def test_shared_emails_pass_the_gates_and_the_store_marks_all_but_the_smallest_id(outcomes, engine):
    outcome = outcomes["Contact"]
    groups = _email_groups(outcome)
    assert any(any(r.get("_dirty") == "duplicate_email" for r in g) for g in groups.values())
    assert not [f for f in outcome.page.rejected if f["stage"] == DEDUPLICATION]
    for records in groups.values():
        for record in records:
            if record.get("_dirty") in (None, "duplicate_email", DUPLICATE_ID):
                assert record["Id"] in outcome.clean.index, record["Id"]
    now = datetime(2025, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        page = convert_page(engine.dialect, "t", PERSONS, outcome.page, now)
        load_page(conn, tenant_id="t", entity=PERSONS, page=page, mode="full", run_id="r",
                  now=now, stats={})  # fmt: skip
        rows = conn.execute(
            sa.select(persons.c.external_id, persons.c.email, persons.c.duplicate_of)
        ).all()
    by_email: dict[str, list[str]] = {}
    for row in rows:
        if row.email is not None:
            by_email.setdefault(row.email, []).append(row.external_id)
    expected = {row.external_id: None for row in rows}
    for ids in by_email.values():
        expected.update({i: min(ids) for i in ids if i != min(ids)})
    assert {row.external_id: row.duplicate_of for row in rows} == expected
    assert len(rows) == len(outcome.clean)  # every twin stored
    assert any(expected.values()), "no twin reached the store"


def test_every_duplicate_email_record_is_in_a_shared_email_group(outcomes):
    outcome = outcomes["Contact"]
    grouped = {r["Id"] for g in _email_groups(outcome).values() for r in g}
    dirty = _dirty(outcome, "duplicate_email")
    assert dirty and all(r["Id"] in grouped for r in dirty)


def _clean_rejections(outcome: Outcome, sobject: str) -> list[dict[str, Any]]:
    """Rejections of records the ground truth calls clean, other than for inherited long text
    (covered, and reported as a generator issue, above)."""
    return [
        outcome.rejected[i]
        for i, r in outcome.truth.items()
        if r.get("_dirty") in (None, DUPLICATE_ID)
        and i in outcome.rejected
        and _overlong(sobject, r) is None
    ]


@pytest.mark.parametrize("sobject", list(ENTITIES))
def test_no_clean_record_is_rejected(outcomes, sobject):
    assert _clean_rejections(outcomes[sobject], sobject) == []


def test_no_clean_contact_loses_a_shared_email_to_its_dirty_copy(outcomes):
    assert _clean_rejections(outcomes["Contact"], "Contact") == []


@pytest.mark.parametrize("sobject", list(ENTITIES))
def test_every_record_is_accounted_for(outcomes, sobject):
    outcome = outcomes[sobject]
    stats = outcome.page.result.stats
    assert stats.passed + stats.failed + stats.duplicates_removed == stats.input
    assert set(outcome.clean.index) | set(outcome.rejected) == set(outcome.truth)
    assert not set(outcome.clean.index) & set(outcome.rejected)
