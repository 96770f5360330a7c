"""Stored mappings on SQLite and PostgreSQL: save, load, effective mappings, all or nothing."""

from __future__ import annotations

import pytest

from gtm_pipeline.sync.entities import PERSONS, FieldMapping
from gtm_pipeline.sync.mapping import (
    MappingError,
    effective_mappings,
    load_mappings,
    save_mappings,
)

REGION = FieldMapping("custom_fields.region", "Region__c", "uppercase")
TITLE = FieldMapping("title", "Notes__c", required=True)


def test_without_stored_mappings_the_defaults_apply(engine):
    with engine.connect() as conn:
        assert effective_mappings(conn, "acme", "persons") == list(PERSONS.mappings)
        assert load_mappings(conn, "acme", "persons") == []


def test_saved_mappings_round_trip_and_merge_with_the_defaults(engine):
    with engine.begin() as conn:
        assert save_mappings(conn, "acme", "persons", [REGION, TITLE]) == []
    with engine.connect() as conn:
        assert sorted(load_mappings(conn, "acme", "persons"), key=lambda m: m.target) == [
            REGION, TITLE
        ]  # fmt: skip
        effective = effective_mappings(conn, "acme", "persons")
        assert effective[-1] == REGION and TITLE in effective
        assert [m.target for m in effective][: len(PERSONS.mappings)] == [
            m.target for m in PERSONS.mappings
        ]
        assert effective_mappings(conn, "other", "persons") == list(PERSONS.mappings)
        assert effective_mappings(conn, "acme", "persons", direction="writeback") == []


def test_saving_replaces_the_previous_mapping_and_keeps_the_last_duplicate(engine):
    with engine.begin() as conn:
        save_mappings(conn, "acme", "persons", [REGION, TITLE])
    with engine.begin() as conn:
        warnings = save_mappings(
            conn, "acme", "persons",
            [FieldMapping("title", "Title"), FieldMapping("title", "Notes__c")],
        )  # fmt: skip
    assert len(warnings) == 1
    with engine.connect() as conn:
        assert load_mappings(conn, "acme", "persons") == [FieldMapping("title", "Notes__c")]


@pytest.mark.parametrize(
    "bad",
    [
        FieldMapping("title", "Name FROM Contact WHERE Id != null --"),
        FieldMapping("title", "Title", "custom:unknown"),
        FieldMapping("nickname", "Title"),
    ],
)
def test_a_refused_mapping_saves_nothing(engine, bad):
    with engine.begin() as conn:
        save_mappings(conn, "acme", "persons", [REGION])
    with pytest.raises(MappingError), engine.begin() as conn:
        save_mappings(conn, "acme", "persons", [TITLE, bad])
    with engine.connect() as conn:
        assert load_mappings(conn, "acme", "persons") == [REGION]


def test_an_unknown_entity_or_direction_is_a_mapping_error(engine):
    with engine.connect() as conn, pytest.raises(MappingError, match="unknown entity"):
        load_mappings(conn, "acme", "campaigns")
    with engine.connect() as conn, pytest.raises(MappingError, match="direction"):
        load_mappings(conn, "acme", "persons", direction="both")
