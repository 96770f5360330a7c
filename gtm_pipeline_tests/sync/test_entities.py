"""Each entity owns its names; a user may type any of them, code asks the entity for the one it
needs."""

from __future__ import annotations

import pytest

from gtm_pipeline.store.scoring import SCORE_ENTITY_TYPES
from gtm_pipeline.store.tables import ENTITY_ROWS, entity_rows
from gtm_pipeline.sync.entities import (
    ACCOUNTS,
    ACTIVITY_ENTITIES,
    LEADS,
    OPPORTUNITIES,
    PERSONS,
    SCORED_ENTITIES,
    SYNC_ORDER,
    UnknownEntity,
    by_score_type,
    entity,
    entity_for,
)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("persons", PERSONS),
        ("contacts", PERSONS),
        ("contact", PERSONS),
        ("person", PERSONS),
        ("Contact", PERSONS),
        (" Contacts ", PERSONS),
        ("accounts", ACCOUNTS),
        ("Account", ACCOUNTS),
        ("opportunity", OPPORTUNITIES),
        ("OPPORTUNITIES", OPPORTUNITIES),
    ],
)
def test_a_user_may_name_an_entity_by_any_of_its_names(typed, expected) -> None:
    assert entity_for(typed) is expected


def test_an_unknown_name_lists_the_names_accepted() -> None:
    with pytest.raises(UnknownEntity, match="unknown entity 'cases'; expected one of") as caught:
        entity_for("cases")
    assert "persons/contacts/person/Contact" in str(caught.value)
    assert not caught.value.retryable


def test_no_two_entities_share_a_name() -> None:
    per_entity = [{name.lower() for name in e.names} for e in SYNC_ORDER]
    assert len(set().union(*per_entity)) == sum(map(len, per_entity))


def test_the_names_the_store_dagster_and_scores_use() -> None:
    assert [e.name for e in SYNC_ORDER] == [
        "accounts", "persons", "leads", "opportunities", "tasks", "events"
    ]  # fmt: skip
    assert [e.asset_name for e in SYNC_ORDER] == [
        "accounts", "contacts", "leads", "opportunities", "tasks", "events"
    ]  # fmt: skip
    assert [e.sf_object for e in SYNC_ORDER] == [
        "Account",
        "Contact",
        "Lead",
        "Opportunity",
        "Task",
        "Event",
    ]
    assert all(e.name in ENTITY_ROWS for e in SYNC_ORDER)
    assert [entity_rows(e.name).table.name for e in ACTIVITY_ENTITIES] == ["activities"] * 2
    assert entity_rows(LEADS.name).table is entity_rows(PERSONS.name).table
    # The store keeps its own tuple (it may not import sync); the two must agree.
    assert tuple(e.score_type for e in SCORED_ENTITIES) == SCORE_ENTITY_TYPES
    assert all(e.score_type is None for e in ACTIVITY_ENTITIES)
    assert PERSONS.display_name == "persons (Contact)"


def test_code_finds_an_entity_by_the_name_it_holds() -> None:
    assert by_score_type("opportunity") is OPPORTUNITIES
    assert entity("persons") is PERSONS
    with pytest.raises(UnknownEntity, match="unknown entity type 'contacts'"):
        by_score_type("contacts")
    with pytest.raises(UnknownEntity, match="unknown entity 'contacts'"):
        entity("contacts")
