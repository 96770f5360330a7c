"""Writeback mappings: checked against the org's describe, stored per tenant, used by the engine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from gtm_pipeline.cli import common as cli_common
from gtm_pipeline.cli.writeback_mapping import parse_pairs
from gtm_pipeline.emulator.testing import (
    EmulatorHandle,
    emulator_client,
    running_emulator,
)
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.salesforce.metadata import FieldInfo, describe_object, parse_describe
from gtm_pipeline.store.mappings import load_mapping_rows
from gtm_pipeline.store.tables import persons
from gtm_pipeline.sync.mapping import MappingError
from gtm_pipeline.writeback.engine import write_back
from gtm_pipeline.writeback.mapping import (
    DEFAULT_FIELD_MAP,
    WritebackBlocked,
    WritebackMappingError,
    block_unwritable_maps,
    candidate_fields,
    is_default,
    load_allowed_standard,
    load_writeback_map,
    refusal,
    reset_writeback_map,
    save_writeback_map,
    standard_targets,
    stored_map_problems,
    validate_writeback_map,
)

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
        ({"fit_score": "Days_Since_Activity__c"}, "is a formula field"),
        ({"scored_at": "SystemModstamp"}, "is not updateable"),
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
    with pytest.raises(WritebackMappingError, match="unknown entity type 'campaign'"):
        validate_writeback_map(client, "campaign", DEFAULT_FIELD_MAP)


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
    monkeypatch.setattr(cli_common, "client_factory", lambda _engine, _tenant: client)
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
    assert ["lead", "tier", "Lead.Tier__c", "default"] in rows
    assert len(rows) == 1 + 1 + 5 + 5 + 5  # header, the person map, the three default maps
    validated = invoke(cli, "validate", "--tenant", TENANT)
    assert validated.output.splitlines() == [
        "person: valid",
        "lead: valid",
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


# -- the writeback rule --------------------------------------------------------------------------


def _described(name: str, type_: str, **extra: Any) -> FieldInfo:
    """A field parsed from a describe entry shaped as a real org's (keys Salesforce sends)."""
    raw = {"name": name, "label": name, "type": type_, "custom": False, "updateable": True,
           "calculated": False, "autoNumber": False, "unique": False, "externalId": False,
           "compoundFieldName": None, "length": 0, "precision": 0, "scale": 0, **extra}  # fmt: skip
    [field] = parse_describe({"fields": [raw]})
    return field


# Fields real orgs have that a writeback must never take without being told to: one wrong click
# would overwrite customer data on every record.
REAL_STANDARD_TARGETS = [
    pytest.param("tier", _described("Title", "string", length=128), "standard", id="Contact.Title"),
    pytest.param(
        "tier",
        _described("FirstName", "string", length=40, compoundFieldName="Name"),
        "part of the compound field Name",
        id="Contact.FirstName",
    ),
    pytest.param(
        "fit_score",
        _described(
            "MailingLatitude", "double", precision=18, scale=15, compoundFieldName="MailingAddress"
        ),  # fmt: skip
        "part of the compound field MailingAddress",
        id="Contact.MailingLatitude",
    ),
    pytest.param(
        "scored_at",
        _described("EmailBouncedDate", "datetime"),
        "standard",
        id="Contact.EmailBouncedDate",
    ),  # fmt: skip
    pytest.param(
        "fit_score",
        _described("AnnualRevenue", "currency", precision=18, scale=0),
        "keeps 0 decimal place(s)",
        id="Account.AnnualRevenue",
    ),
    pytest.param("tier", _described("Name", "string", length=255), "standard", id="Account.Name"),
    pytest.param(
        "fit_score",
        _described("Amount", "currency", precision=18, scale=2),
        "standard",
        id="Opportunity.Amount",
    ),
    pytest.param(
        "combined_score",
        _described("Probability", "percent", precision=3, scale=0),
        "keeps 0 decimal place(s)",
        id="Opportunity.Probability",
    ),
]


@pytest.mark.parametrize(("score", "field", "reason"), REAL_STANDARD_TARGETS)
def test_standard_fields_of_real_orgs_are_refused_with_the_reason(score, field, reason) -> None:
    refused = refusal(score, field)
    assert refused is not None and reason in refused
    assert field not in candidate_fields([field], score)


@pytest.mark.parametrize(
    ("score", "field", "reason"),
    [
        ("fit_score", _described("MailingAddress", "address", updateable=False),
         "compound address"),
        ("fit_score", _described("Loc__c", "location", custom=True), "compound location"),
        ("fit_score", _described("Loc__Latitude__s", "double", custom=True, precision=18,
                                 scale=6, compoundFieldName="Loc__c"), "part of the compound"),
        ("fit_score", _described("Days__c", "double", custom=True, precision=18, scale=2,
                                 calculated=True, updateable=False), "formula"),
        ("tier", _described("Ref__c", "string", custom=True, length=30, autoNumber=True,
                            updateable=False), "auto-number"),
        ("tier", _described("Key__c", "string", custom=True, length=64, externalId=True),
         "external id"),
        ("tier", _described("Code__c", "string", custom=True, length=64, unique=True), "unique"),
        ("scored_at", _described("Seen__c", "datetime", custom=True, updateable=False),
         "not updateable"),
        ("fit_score", _described("Rank__c", "int", custom=True), "is an int field"),
        ("fit_score", _described("Whole__c", "double", custom=True, precision=18, scale=0),
         "keeps 0 decimal place(s)"),
        ("fit_score", _described("Tenth__c", "percent", custom=True, precision=4, scale=1),
         "keeps 1 decimal place(s)"),
        ("fit_score", _described("Small__c", "double", custom=True, precision=3, scale=2),
         "holds 1 digit(s) before the decimal point"),
        ("combined_score", _described("Two__c", "currency", custom=True, precision=4, scale=2),
         "holds 2 digit(s) before the decimal point"),
    ],
)  # fmt: skip
def test_each_part_of_the_rule_refuses_with_its_own_reason(score, field, reason) -> None:
    refused = refusal(score, field)
    assert refused is not None and reason in refused
    assert refusal(score, field, allow_standard=True) == refused  # the flag lifts nothing else


@pytest.mark.parametrize(
    ("score", "field"),
    [
        ("fit_score", _described("Fit__c", "double", custom=True, precision=18, scale=2)),
        ("engagement_score", _described("Eng__c", "percent", custom=True, precision=5, scale=2)),
        ("fit_score", _described("Least__c", "double", custom=True, precision=5, scale=2)),
        ("combined_score", _described("Comb__c", "currency", custom=True, precision=16, scale=4)),
        ("tier", _described("Tier__c", "textarea", custom=True, length=255)),
        ("scored_at", _described("At__c", "datetime", custom=True)),
    ],
)
def test_custom_updateable_fields_of_a_fitting_type_and_scale_are_accepted(score, field) -> None:
    assert refusal(score, field) is None


def test_the_standard_field_flag_lifts_only_the_custom_field_requirement() -> None:
    title = _described("Title", "string", length=128)
    amount = _described("Amount", "currency", precision=18, scale=2)
    assert refusal("tier", title, allow_standard=True) is None
    assert refusal("fit_score", amount, allow_standard=True) is None
    revenue = _described("AnnualRevenue", "currency", precision=18, scale=0)
    assert "decimal place" in (refusal("fit_score", revenue, allow_standard=True) or "")


@pytest.mark.parametrize(
    ("entity_type", "field_map", "reason"),
    [
        ("person", {"tier": "Title"}, "Contact.Title is a standard Salesforce field"),
        ("person", {"tier": "FirstName"}, "part of the compound field Name"),
        ("person", {"fit_score": "MailingLatitude"}, "part of the compound field MailingAddress"),
        ("person", {"fit_score": "MailingAddress"}, "compound address field"),
        ("person", {"scored_at": "EmailBouncedDate"}, "Contact.EmailBouncedDate is a standard"),
        ("person", {"fit_score": "Legacy_Score__c"}, "keeps 0 decimal place(s)"),
        ("person", {"tier": "External_Key__c"}, "is an external id field"),
        ("person", {"tier": "Record_Number__c"}, "is an auto-number field"),
        ("account", {"fit_score": "AnnualRevenue"}, "Account.AnnualRevenue keeps 0 decimal"),
        ("account", {"tier": "Name"}, "Account.Name is a standard Salesforce field"),
        ("opportunity", {"fit_score": "Amount"}, "Opportunity.Amount is a standard"),
        ("opportunity", {"fit_score": "Probability"}, "Opportunity.Probability keeps 0 decimal"),
    ],
)
def test_the_emulators_describe_exercises_every_rule(client, entity_type, field_map, reason):
    with pytest.raises(WritebackMappingError) as caught:
        validate_writeback_map(client, entity_type, field_map)
    assert reason in str(caught.value)


def test_candidates_leave_out_what_the_rule_refuses(client) -> None:
    fields = describe_object(client, "Contact")
    numbers = {f.name for f in candidate_fields(fields, "fit_score")}
    assert numbers == {"Fit_Score__c", "Engagement_Score__c", "Combined_Score__c"}
    assert {f.name for f in candidate_fields(fields, "tier")} == {"Tier__c", "Notes__c"}
    assert {f.name for f in candidate_fields(fields, "scored_at")} == {"Scored_At__c"}


def test_a_standard_field_chosen_on_purpose_is_stored_with_its_flag(client, engine) -> None:
    checked = validate_writeback_map(client, "person", {"tier": "title"}, allow_standard=True)
    assert checked == {"tier": "Title"}
    assert standard_targets(client, "person", checked) == ["Title"]
    with engine.begin() as conn:
        save_writeback_map(conn, TENANT, "person", checked, allowed_standard=["Title"])
    with engine.connect() as conn:
        assert load_allowed_standard(conn, TENANT, "person") == {"title"}
        [row] = load_mapping_rows(conn, TENANT, "person", "writeback")
        assert row["allow_standard_field"] is True
    assert stored_map_problems(client, engine, TENANT, "person") == []


# -- stored maps: validate and the blocked writeback ----------------------------------------------


def _store_unchecked(engine, entity_type: str, field_map: dict[str, str]) -> None:
    """A map saved without the rule, as an older version of the connector could have."""
    with engine.begin() as conn:
        save_writeback_map(conn, TENANT, entity_type, field_map)


def test_stored_maps_that_break_the_rule_are_reported_per_field(client, engine) -> None:
    _store_unchecked(engine, "person", {"fit_score": "Legacy_Score__c", "tier": "Notes__c"})
    _store_unchecked(engine, "account", {"tier": "Name"})
    assert stored_map_problems(client, engine, TENANT, "opportunity") == []
    [person] = stored_map_problems(client, engine, TENANT, "person")
    assert person.startswith("Contact.Legacy_Score__c keeps 0 decimal place(s)")
    [account] = stored_map_problems(client, engine, TENANT, "account")
    assert account.startswith("Account.Name is a standard Salesforce field")


def test_a_writeback_with_a_map_that_breaks_the_rule_is_blocked_before_any_request(
    emulator, client, engine
) -> None:
    _store_unchecked(engine, "opportunity", {"combined_score": "Probability"})
    before = emulator.control.stats()["calls"].get("composite", 0)
    with pytest.raises(WritebackBlocked) as caught:
        block_unwritable_maps(client, engine, TENANT)
    message = str(caught.value)
    assert "Writeback blocked for tenant acme" in message and "nothing was written" in message
    assert "opportunity: Opportunity.Probability keeps 0 decimal place(s)" in message
    assert isinstance(caught.value, MappingError)  # Dagster assets do not retry it
    assert emulator.control.stats()["calls"].get("composite", 0) == before


def test_the_default_maps_and_deliberate_standard_fields_do_not_block(client, engine) -> None:
    block_unwritable_maps(client, engine, TENANT)  # the emulator has the default fields
    with engine.begin() as conn:
        save_writeback_map(conn, TENANT, "opportunity", {"fit_score": "Amount"},
                           allowed_standard=["Amount"])  # fmt: skip
    block_unwritable_maps(client, engine, TENANT)


# -- the command ---------------------------------------------------------------------------------


def _persons(engine, live: int, deleted: int) -> None:
    now = datetime(2025, 1, 2, tzinfo=UTC)
    rows = [
        {"tenant_id": TENANT, "external_id": f"003{i:015d}", "system_modstamp": now,
         "synced_at": now, "is_deleted": i >= live}
        for i in range(live + deleted)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.insert(persons), rows)


def test_the_command_refuses_a_standard_field_and_says_how_to_choose_it(cli, engine) -> None:
    refused = invoke(cli, "set", "--tenant", TENANT, "--entity", "person", "tier=Title")
    assert refused.exit_code == 1
    assert "Contact.Title is a standard Salesforce field" in refused.output
    assert "--allow-standard-field" in refused.output
    with engine.connect() as conn:
        assert is_default(conn, TENANT, "person")


def test_a_standard_field_on_purpose_warns_how_many_records_it_changes(cli, engine) -> None:
    _persons(engine, live=7, deleted=2)
    saved = invoke(
        cli, "set", "--tenant", TENANT, "--entity", "person", "--allow-standard-field",
        "tier=Title", "fit_score=Fit_Score__c",
    )  # fmt: skip
    assert saved.exit_code == 0, saved.output
    assert "warning: writing to standard field(s) Contact.Title" in saved.output
    assert "on up to 7 live person record(s)" in saved.output
    with engine.connect() as conn:
        assert load_writeback_map(conn, TENANT, "person") == {
            "fit_score": "Fit_Score__c",
            "tier": "Title",
        }
        assert load_allowed_standard(conn, TENANT, "person") == {"title"}
    assert invoke(cli, "validate", "--tenant", TENANT).exit_code == 0


def test_the_flag_does_not_lift_the_rest_of_the_rule(cli, engine) -> None:
    for pairs in (("fit_score=MailingLatitude",), ("tier=FirstName",)):
        refused = invoke(
            cli, "set", "--tenant", TENANT, "--entity", "person", "--allow-standard-field", *pairs
        )
        assert refused.exit_code == 1 and "part of the compound field" in refused.output
    refused = invoke(
        cli, "set", "--tenant", TENANT, "--entity", "account", "--allow-standard-field",
        "fit_score=AnnualRevenue",
    )  # fmt: skip
    assert refused.exit_code == 1 and "keeps 0 decimal place(s)" in refused.output
    with engine.connect() as conn:
        assert is_default(conn, TENANT, "person") and is_default(conn, TENANT, "account")


def test_validate_reports_every_stored_field_that_breaks_the_rule(cli, engine) -> None:
    _store_unchecked(engine, "person", {"fit_score": "Legacy_Score__c", "tier": "Title"})
    result = invoke(cli, "validate", "--tenant", TENANT)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "person: invalid"
    assert lines[1].startswith("  Contact.Legacy_Score__c keeps 0 decimal place(s)")
    assert lines[2].startswith("  Contact.Title is a standard Salesforce field")
    assert lines[3:6] == ["lead: valid", "account: valid", "opportunity: valid"]
    assert "2 writeback field(s) break the writeback rule" in result.output
