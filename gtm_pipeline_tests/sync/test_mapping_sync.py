"""Mappings end to end: a tenant's mapping through a real sync, and the `mapping` command."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from gtm_pipeline.cli import common as cli_common
from gtm_pipeline.cli.mapping import mapping
from gtm_pipeline.store import persons
from gtm_pipeline.sync.entities import LEADS, PERSONS, FieldMapping
from gtm_pipeline.sync.mapping import MappingError, load_mappings, save_mappings
from gtm_pipeline.sync.mapping_file import suggest_mappings
from gtm_pipeline.sync.runner import SyncOptions, sync_entity

TENANT = "acme"


def describes(emulator) -> int:
    return emulator.control.stats()["calls"]["describe"]


def truth_by_id(emulator, sobject: str) -> dict[str, dict]:
    return {r["Id"]: r for r in emulator.control.truth(sobject)}


def test_a_tenant_mapping_of_region_and_account_industry_lands_in_custom_fields(
    emulator, engine, client
):
    with engine.begin() as conn:
        save_mappings(
            conn, TENANT, "persons",
            [FieldMapping("custom_fields.region", "Region__c"),
             FieldMapping("custom_fields.industry", "Account.Industry")],
        )  # fmt: skip
    before = describes(emulator)
    stats = sync_entity(client, engine, TENANT, PERSONS, SyncOptions(full=True))
    assert describes(emulator) - before == 2  # Contact, then Account for the dot path
    assert stats.rows_loaded > 0 and stats.mapping_warnings == []
    with engine.connect() as conn:
        rows = conn.execute(sa.select(persons.c.external_id, persons.c.custom_fields)).all()
    contacts = truth_by_id(emulator, "Contact")
    accounts = truth_by_id(emulator, "Account")
    assert len(rows) == stats.rows_loaded
    with_industry = with_region = 0
    for external_id, custom in rows:
        record = contacts[external_id]
        account = accounts.get(record.get("AccountId") or "")
        expected_industry = account.get("Industry") if account else None
        assert custom == {"region": record.get("Region__c"), "industry": expected_industry}
        with_industry += expected_industry is not None
        with_region += record.get("Region__c") is not None
    assert with_industry > 0 and with_region > 0

    sync_entity(client, engine, TENANT, PERSONS)  # the next run reads describe from the cache
    assert describes(emulator) - before == 2


def test_a_stored_mapping_the_org_does_not_have_stops_the_sync_before_any_query(
    emulator, engine, client
):
    with engine.begin() as conn:
        save_mappings(conn, TENANT, "persons", [FieldMapping("custom_fields.x", "Gone__c")])
    emulator.control.reset_stats()
    with pytest.raises(MappingError, match="'Gone__c'.*does not exist"):
        sync_entity(client, engine, TENANT, PERSONS)
    calls = emulator.control.stats()["calls"]
    assert calls["query"] == 0 and calls["describe"] == 1


def test_duplicate_targets_are_reported_in_the_run_stats(emulator, engine, client):
    mappings = [*PERSONS.mappings, FieldMapping("title", "Notes__c")]
    stats = sync_entity(client, engine, TENANT, PERSONS, SyncOptions(full=True), mappings=mappings)
    assert len(stats.mapping_warnings) == 1 and "'title'" in stats.mapping_warnings[0]
    assert stats.as_dict()["mapping_warnings"] == stats.mapping_warnings


# --- the `mapping` command ---------------------------------------------------------------------


@pytest.fixture()
def cli(emulator, engine, client, database_url, monkeypatch) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(cli_common, "client_factory", lambda _engine, _tenant: client)
    return CliRunner()


def invoke(cli: CliRunner, *args: str):
    return cli.invoke(mapping, list(args), catch_exceptions=False)


GOOD_FILE = """\
contacts:
  - {target: custom_fields.region, source: Region__c, transform: uppercase}
accounts:
  - {target: custom_fields.billing, source: BillingAddress, transform: trim}
"""


def test_set_saves_every_entity_of_a_valid_file_and_show_lists_it(cli, engine, tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text(GOOD_FILE)
    result = invoke(cli, "set", "--tenant", TENANT, "--file", str(path))
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        assert load_mappings(conn, TENANT, "persons") == [
            FieldMapping("custom_fields.region", "Region__c", "uppercase")
        ]
        assert load_mappings(conn, TENANT, "accounts")[0].source == "BillingAddress"
    shown = invoke(cli, "show", "--tenant", TENANT, "--entity", "persons")
    assert shown.exit_code == 0
    region_line = next(line for line in shown.output.splitlines() if "Region__c" in line)
    assert "tenant" in region_line and "uppercase" in region_line
    assert "default" in next(line for line in shown.output.splitlines() if "FirstName" in line)


@pytest.mark.parametrize(
    "source",
    ["Region__c FROM Contact WHERE Id != null --", "Id, (SELECT Id FROM Cases)", "Shoe_Size__c"],
)
def test_set_refuses_injection_or_unknown_fields_and_saves_nothing(cli, engine, tmp_path, source):
    path = tmp_path / "mapping.yaml"
    path.write_text(
        "accounts:\n  - {target: custom_fields.notes, source: Notes__c}\n"
        f"contacts:\n  - target: custom_fields.x\n    source: '{source}'\n"
    )
    result = invoke(cli, "set", "--tenant", TENANT, "--file", str(path))
    assert result.exit_code != 0
    assert "Error:" in result.output and len(result.output.strip().splitlines()) == 1
    with engine.connect() as conn:
        assert load_mappings(conn, TENANT, "persons") == []
        assert load_mappings(conn, TENANT, "accounts") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("campaigns: []", "unknown entity"),
        ("persons: {target: title}", "expected a list"),
        ("persons:\n  - {target: title}", "target and source are required"),
        ("persons:\n  - {target: title, source: Title, colour: red}", "unknown keys colour"),
        ("persons: [", "not valid YAML"),
        ("- just a list", "must map entity names"),
    ],
)
def test_malformed_files_are_clear_errors(cli, tmp_path, text, message):
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    result = invoke(cli, "validate", "--tenant", TENANT, "--file", str(path))
    assert result.exit_code != 0 and message in result.output


def test_validate_checks_the_stored_mappings_against_the_org(cli, engine):
    result = invoke(cli, "validate", "--tenant", TENANT)
    assert result.exit_code == 0 and "persons: valid" in result.output
    with engine.begin() as conn:
        save_mappings(conn, TENANT, "persons", [FieldMapping("custom_fields.x", "Gone__c")])
    result = invoke(cli, "validate", "--tenant", TENANT)
    assert result.exit_code != 0 and "Gone__c" in result.output


def test_suggest_offers_every_custom_field_as_a_file_set_accepts(cli, engine, tmp_path):
    result = invoke(cli, "suggest", "--tenant", TENANT, "--entity", "contacts")
    assert result.exit_code == 0
    assert "source: Region__c" in result.output and "custom_fields.region" in result.output
    assert "custom_fields.fit_score" in result.output and "FirstName" not in result.output
    path = tmp_path / "suggested.yaml"
    path.write_text(result.output)
    assert invoke(cli, "set", "--tenant", TENANT, "--file", str(path)).exit_code == 0
    with engine.connect() as conn:
        assert len(load_mappings(conn, TENANT, "persons")) == 11  # the emulator's custom fields


def test_a_bad_tenant_id_is_refused(cli):
    result = invoke(cli, "show", "--tenant", "a b;c")
    assert result.exit_code != 0 and "tenant id" in result.output


def test_suggest_leaves_out_a_custom_geolocation_compound_and_offers_its_parts():
    """Bulk API queries take no compound fields, so only the parts are suggested."""
    from gtm_pipeline.salesforce.metadata import parse_describe

    def field(name: str, type_: str, parent: str | None = None) -> dict:
        return {"name": name, "label": name, "type": type_, "custom": True, "updateable": True,
                "compoundFieldName": parent, "precision": 18, "scale": 6}  # fmt: skip

    fields = parse_describe({"fields": [
        field("Office__c", "location"),
        field("Office__Latitude__s", "double", "Office__c"),
        field("Office__Longitude__s", "double", "Office__c"),
    ]})  # fmt: skip
    suggested = {m.source for m in suggest_mappings(PERSONS, fields)}
    assert suggested == {"Office__Latitude__s", "Office__Longitude__s"}


LEAD_FILE = """\
leads:
  - {target: first_name, source: Name}
  - {target: last_name, source: Name}
  - {target: custom_fields.address, source: Address}
  - {target: custom_fields.region, source: Region__c}
"""


def test_a_lead_mapping_splits_the_name_and_flattens_the_address(
    cli, engine, client, emulator, tmp_path
):
    path = tmp_path / "leads.yaml"
    path.write_text(LEAD_FILE)
    result = invoke(cli, "set", "--tenant", TENANT, "--file", str(path))
    assert result.exit_code == 0, result.output
    shown = invoke(cli, "show", "--tenant", TENANT, "--entity", "leads")
    assert "Company" in shown.output and "Address" in shown.output
    # The compound's last word is the last name: a two-word last name shows the split was used.
    lead = next(r for r in leads_of(emulator) if not r["IsConverted"])
    update = {"op": "update", "object": "Lead", "id": lead["Id"]}
    emulator.control.mutate([{**update, "fields": {"FirstName": "Ada", "LastName": "Van Dyke"}}])
    stats = sync_entity(client, engine, TENANT, LEADS, SyncOptions(full=True))
    assert stats.rows_loaded > 0 and stats.mapping_warnings == []
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(persons).where(
                persons.c.source_object == "Lead", persons.c.is_deleted.is_(False)
            )
        ).all()
    leads = truth_by_id(emulator, "Lead")
    assert len(rows) == stats.rows_loaded
    for row in rows:
        record = leads[row.external_id]
        first, _, last = (record.get("Name") or "").strip().rpartition(" ")
        assert (row.first_name, row.last_name) == (first.strip() or None, last or None)
        assert row.company == (record.get("Company") or "").strip() or None
        assert row.custom_fields["address_city"] == (record.get("City") or "").strip() or None
        assert row.custom_fields["region"] == record.get("Region__c")
    split = next(r for r in rows if r.external_id == lead["Id"])
    assert (split.first_name, split.last_name) == ("Ada Van", "Dyke")


def leads_of(emulator) -> list[dict]:
    return [r for r in emulator.control.truth("Lead") if not r["IsDeleted"] and not r.get("_dirty")]
