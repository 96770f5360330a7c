"""Writeback mappings: checked against the org's describe, stored per tenant, used by the engine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pandas as pd
import pytest
from click.testing import CliRunner

from gtm_pipeline.emulator.testing import (
    EmulatorHandle,
    emulator_client,
    running_emulator,
)
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.salesforce.metadata import describe_object
from gtm_pipeline.sync import mapping_cli
from gtm_pipeline.writeback.engine import write_back
from gtm_pipeline.writeback.mapping import (
    DEFAULT_FIELD_MAP,
    WritebackMappingError,
    candidate_fields,
    is_default,
    load_writeback_map,
    reset_writeback_map,
    save_writeback_map,
    validate_writeback_map,
)
from gtm_pipeline.writeback.mapping_cli import entity_type_for, parse_pairs

TENANT = "acme"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Iterator[EmulatorHandle]:
    counts = {"Account": 5, "Contact": 30, "Opportunity": 5}
    folder = tmp_path_factory.mktemp("emulator")
    with running_emulator(folder, counts=counts, seed=3, dirty_ratio=0.0) as handle:
        yield handle


@pytest.fixture()
def client(emulator) -> SalesforceClient:
    return emulator_client(emulator.info, sleep=lambda _s: None)


def test_the_default_fields_are_valid_on_every_object(client) -> None:
    for entity_type in ("person", "account", "opportunity"):
        assert validate_writeback_map(client, entity_type, DEFAULT_FIELD_MAP) == DEFAULT_FIELD_MAP


def test_field_names_are_matched_case_insensitively_and_stored_as_salesforce_spells_them(
    client,
) -> None:
    checked = validate_writeback_map(client, "person", {"tier": "notes__c"})
    assert checked == {"tier": "Notes__c"}


@pytest.mark.parametrize(
    ("field_map", "message"),
    [
        ({"fit_score": "No_Such_Field__c"}, "Contact has no field No_Such_Field__c"),
        ({"fit_score": "Days_Since_Activity__c"}, "is not updateable"),
        ({"fit_score": "Notes__c"}, "fit_score needs a number field"),
        ({"scored_at": "Fit_Score__c"}, "scored_at needs a datetime field"),
        ({"tier": "Fit_Score__c"}, "tier needs text field"),
        ({"tier": "Region__c"}, "is a picklist field"),
        ({"fit": "Fit_Score__c"}, "unknown score field(s) fit"),
        ({"fit_score": "Fit_Score__c", "combined_score": "fit_score__c"}, "target of two"),
        ({"fit_score": "Fit_Score__c; DROP"}, "not a Salesforce field name"),
        ({}, "map at least one score field"),
    ],
)
def test_a_field_that_does_not_fit_is_refused_with_its_reason(client, field_map, message) -> None:
    with pytest.raises(WritebackMappingError) as caught:
        validate_writeback_map(client, "person", field_map)
    assert message in str(caught.value)


def test_an_unknown_entity_type_is_refused(client) -> None:
    with pytest.raises(WritebackMappingError, match="unknown entity type 'lead'"):
        validate_writeback_map(client, "lead", DEFAULT_FIELD_MAP)


def test_candidates_are_the_updateable_fields_of_a_fitting_type(client) -> None:
    fields = describe_object(client, "Contact")
    numbers = {f.name for f in candidate_fields(fields, "fit_score")}
    assert {"Fit_Score__c", "Engagement_Score__c", "Combined_Score__c"} <= numbers
    assert "Days_Since_Activity__c" not in numbers  # a formula: read-only
    assert {f.name for f in candidate_fields(fields, "scored_at")} >= {"Scored_At__c"}
    assert "Notes__c" in {f.name for f in candidate_fields(fields, "tier")}


def test_a_tenant_map_is_stored_apart_from_other_tenants_and_reset_to_defaults(engine) -> None:
    with engine.begin() as conn:
        assert is_default(conn, TENANT, "person")
        save_writeback_map(
            conn, TENANT, "person", {"tier": "Notes__c", "fit_score": "Fit_Score__c"}
        )
    with engine.connect() as conn:
        assert load_writeback_map(conn, TENANT, "person") == {
            "fit_score": "Fit_Score__c",
            "tier": "Notes__c",
        }
        assert load_writeback_map(conn, "other", "person") == DEFAULT_FIELD_MAP
        assert load_writeback_map(conn, TENANT, "account") == DEFAULT_FIELD_MAP
        assert not is_default(conn, TENANT, "person")
    with engine.begin() as conn:
        reset_writeback_map(conn, TENANT, "person")
    with engine.connect() as conn:
        assert load_writeback_map(conn, TENANT, "person") == DEFAULT_FIELD_MAP


def test_a_writeback_map_does_not_touch_the_sync_mapping_of_the_same_tenant(engine) -> None:
    from gtm_pipeline.store.mappings import load_mapping_rows
    from gtm_pipeline.sync.mapping import load_mappings

    with engine.begin() as conn:
        save_writeback_map(conn, TENANT, "person", {"tier": "Notes__c"})
    with engine.connect() as conn:
        assert load_mappings(conn, TENANT, "persons") == []
        assert load_mapping_rows(conn, TENANT, "person", direction="sync") == []


def test_the_engine_writes_to_the_tenants_mapped_field(emulator, client, engine) -> None:
    contact_id = next(iter(emulator.control.truth("Contact")))["Id"]
    with engine.begin() as conn:
        save_writeback_map(conn, TENANT, "person", {"tier": "Notes__c"})
    with engine.connect() as conn:
        field_map = load_writeback_map(conn, TENANT, "person")
    scores = pd.DataFrame(
        {
            "entity_type": ["person"],
            "external_id": [contact_id],
            "fit_score": [50.0],
            "engagement_score": [40.0],
            "combined_score": [45.0],
            "tier": ["Tier Mapped"],
            "scored_at": [datetime(2025, 1, 2, tzinfo=UTC)],
        }
    )
    result = write_back(client, engine, TENANT, "person", scores, field_map)
    assert (result.success, result.failed, result.requests) == (1, 0, 1)
    truth = {r["Id"]: r for r in emulator.control.truth("Contact")}
    assert truth[contact_id]["Notes__c"] == "Tier Mapped"
    assert truth[contact_id]["Tier__c"] != "Tier Mapped"


@pytest.mark.parametrize(
    ("typed", "entity_type"),
    [
        ("person", "person"),
        ("Contacts", "person"),
        ("accounts", "account"),
        ("opportunity", "opportunity"),
    ],
)
def test_entity_names_a_user_may_type(typed, entity_type) -> None:
    assert entity_type_for(typed) == entity_type


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ((), "at least one"),
        (("fit_score",), "is not score_field=SalesforceField"),
        (("fit_score=",), "is not score_field=SalesforceField"),
        (("tier=A__c", "tier=B__c"), "tier is given twice"),
    ],
)
def test_malformed_pairs_are_refused(pairs, message) -> None:
    with pytest.raises(WritebackMappingError, match=message):
        parse_pairs(pairs)


@pytest.fixture()
def cli(client, engine, database_url, monkeypatch) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(mapping_cli, "client_factory", lambda _engine, _tenant: client)
    return CliRunner()


def invoke(cli: CliRunner, *args: str):
    from gtm_pipeline.cli import main

    return cli.invoke(main, ["mapping", "writeback", *args], catch_exceptions=False)


def test_the_command_sets_shows_validates_and_resets_a_map(cli, engine) -> None:
    saved = invoke(cli, "set", "--tenant", TENANT, "--entity", "contacts", "tier=notes__c")
    assert saved.exit_code == 0, saved.output
    assert "person: saved 1 writeback field(s)" in saved.output
    shown = invoke(cli, "show", "--tenant", TENANT)
    rows = [line.split() for line in shown.output.splitlines()]
    assert ["person", "tier", "Contact.Notes__c", "tenant"] in rows
    assert ["account", "fit_score", "Account.Fit_Score__c", "default"] in rows
    assert len(rows) == 1 + 1 + 5 + 5  # header, the person map, the two default maps
    validated = invoke(cli, "validate", "--tenant", TENANT)
    assert validated.output.splitlines() == [
        "person: valid",
        "account: valid",
        "opportunity: valid",
    ]
    assert invoke(cli, "reset", "--tenant", TENANT, "--entity", "person").exit_code == 0
    with engine.connect() as conn:
        assert load_writeback_map(conn, TENANT, "person") == DEFAULT_FIELD_MAP


def test_the_command_refuses_a_field_that_does_not_fit_and_saves_nothing(cli, engine) -> None:
    refused = invoke(cli, "set", "--tenant", TENANT, "--entity", "person", "fit_score=Notes__c")
    assert refused.exit_code == 1
    assert "Contact.Notes__c is a string field; fit_score needs a number field" in refused.output
    with engine.connect() as conn:
        assert is_default(conn, TENANT, "person")
