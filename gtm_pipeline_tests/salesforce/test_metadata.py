"""Metadata discovery: field facts from the emulator and from real-describe-shaped documents,
compounds by type, ordering, writeability and the per-org cache."""

from __future__ import annotations

from typing import Any

import pytest

from gtm_pipeline.emulator.testing import emulator_client
from gtm_pipeline.salesforce import metadata
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.salesforce.metadata import (
    MetadataError,
    clear_describe_cache,
    describe_object,
    parse_describe,
)


@pytest.fixture()
def client(emulator, tokens) -> SalesforceClient:
    return emulator_client(emulator.info, tokens["access_token"], sleep=lambda _s: None)


def describes(emulator) -> int:
    return emulator.control.stats()["calls"]["describe"]


def test_contact_fields_carry_name_label_type_flags_and_compound_parent(client):
    fields = {f.name: f for f in describe_object(client, "Contact")}
    region = fields["Region__c"]
    assert (region.label, region.type, region.custom, region.updateable) == (
        "Region", "picklist", True, True
    )  # fmt: skip
    assert fields["MailingCity"].compound_parent == "MailingAddress"
    assert fields["FirstName"].compound_parent == "Name"
    assert fields["Id"].nillable is False and fields["Id"].updateable is False
    assert fields["Email"].length == 80 and fields["Email"].custom is False
    assert fields["AccountId"].relationship_name == "Account"
    assert fields["AccountId"].reference_to == ("Account",)


def test_every_attribute_the_writeback_rule_needs_is_read_from_the_describe(client):
    contact = {f.name: f for f in describe_object(client, "Contact")}
    latitude = contact["MailingLatitude"]
    assert (latitude.type, latitude.precision, latitude.scale) == ("double", 18, 15)
    assert latitude.compound_parent == "MailingAddress"
    assert contact["Fit_Score__c"].scale == 2 and contact["Legacy_Score__c"].scale == 0
    assert contact["Days_Since_Activity__c"].calculated
    assert contact["Record_Number__c"].auto_number
    key = contact["External_Key__c"]
    assert key.external_id and key.unique and key.custom
    assert not any(f.calculated or f.auto_number or f.unique for f in [contact["Title"]])
    account = {f.name: f for f in describe_object(client, "Account")}
    revenue = account["AnnualRevenue"]
    assert (revenue.type, revenue.precision, revenue.scale) == ("currency", 18, 0)
    opportunity = {f.name: f for f in describe_object(client, "Opportunity")}
    assert (opportunity["Amount"].precision, opportunity["Amount"].scale) == (18, 2)
    assert (opportunity["Probability"].type, opportunity["Probability"].scale) == ("percent", 0)


def test_compounds_are_listed_and_told_by_their_type(client):
    contact = {f.name: f for f in describe_object(client, "Contact")}
    assert contact["MailingAddress"].is_compound and not contact["MailingAddress"].updateable
    assert not contact["MailingStreet"].is_compound and contact["MailingStreet"].compound_parent
    assert contact["FirstName"].compound_parent == "Name" and not contact["Name"].is_compound
    assert not contact["Email"].is_compound and not contact["Email"].compound_parent
    assert {"BillingAddress", "BillingLatitude"} <= {
        f.name for f in describe_object(client, "Account")
    }


def _field(name: str, type_: str, **extra: Any) -> dict[str, Any]:
    """A field as a real org's describe has it (only the keys discovery reads matter here)."""
    flags = dict.fromkeys(("custom", "calculated", "autoNumber", "unique", "externalId"), False)
    sizes = {"length": 0, "precision": 0, "scale": 0}
    return {"name": name, "label": name, "type": type_, "updateable": True,
            "compoundFieldName": None, **flags, **sizes, **extra}  # fmt: skip


def test_compounds_of_real_describes_are_recognised_by_type_whatever_their_name():
    """Lead and Organization name their address `Address` (7 letters: a length rule missed it);
    a custom geolocation is `Loc__c` with `__s` parts."""
    lead = parse_describe({"fields": [
        _field("Address", "address", updateable=False),
        _field("Street", "textarea", compoundFieldName="Address"),
        _field("Latitude", "double", precision=18, scale=15, compoundFieldName="Address"),
        _field("Name", "string", updateable=False),
        _field("FirstName", "string", compoundFieldName="Name"),
        _field("Loc__c", "location", custom=True, updateable=False),
        _field("Loc__Latitude__s", "double", custom=True, scale=6, compoundFieldName="Loc__c"),
        _field("EmailAddress__c", "email", custom=True),
    ]})  # fmt: skip
    by_name = {f.name: f for f in lead}
    assert {n for n, f in by_name.items() if f.is_compound} == {"Address", "Loc__c"}
    assert {n for n, f in by_name.items() if f.compound_parent} == {
        "Street", "Latitude", "FirstName", "Loc__Latitude__s"
    }  # fmt: skip
    assert by_name["Latitude"].scale == 15 and by_name["Loc__Latitude__s"].scale == 6


def test_standard_fields_come_first_then_custom_each_alphabetical_by_label(client):
    fields = describe_object(client, "Account")
    custom_flags = [f.custom for f in fields]
    first_custom = custom_flags.index(True)
    assert not any(custom_flags[:first_custom]) and all(custom_flags[first_custom:])
    for group in (fields[:first_custom], fields[first_custom:]):
        labels = [f.label.casefold() for f in group]
        assert labels == sorted(labels)


def test_describe_is_cached_per_org_and_object_until_refreshed(client, emulator):
    before = describes(emulator)
    for _ in range(3):
        describe_object(client, "Contact")
    describe_object(client, "Contact")
    assert describes(emulator) - before == 1
    describe_object(client, "Account")
    assert describes(emulator) - before == 2
    describe_object(client, "Contact", refresh=True)
    assert describes(emulator) - before == 3
    clear_describe_cache()
    describe_object(client, "Contact")
    assert describes(emulator) - before == 4


def test_describe_cache_expires_after_its_ttl(client, emulator, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(metadata, "clock", lambda: now[0])
    before = describes(emulator)
    describe_object(client, "Opportunity")
    now[0] += metadata.DEFAULT_TTL_SECONDS - 1
    describe_object(client, "Opportunity")
    assert describes(emulator) - before == 1
    now[0] += 2
    describe_object(client, "Opportunity")
    assert describes(emulator) - before == 2


def test_a_document_without_fields_is_a_clear_error():
    with pytest.raises(MetadataError, match="no field list"):
        parse_describe({"name": "Contact"})
    with pytest.raises(MetadataError, match="without name or type"):
        parse_describe({"fields": [{"label": "x"}]})


class _Org:
    """A describe client for one org: counts its describe calls; `org_id` may be unknown."""

    def __init__(self, org_id: str | None, label: str) -> None:
        self.org_id = org_id
        self.instance_url = "https://shared.my.salesforce.com"  # the same for every org here
        self.label = label
        self.calls = 0

    def describe(self, sobject: str) -> dict[str, Any]:
        self.calls += 1
        return {"fields": [_field("Id", "id", updateable=False), _field(self.label, "double")]}


def test_two_orgs_behind_one_instance_url_never_share_a_describe():
    first, second = _Org("00D000000000001AAA", "First__c"), _Org("00D000000000002AAA", "Second__c")
    assert "First__c" in {f.name for f in describe_object(first, "Contact")}
    assert "Second__c" in {f.name for f in describe_object(second, "Contact")}
    assert (first.calls, second.calls) == (1, 1)


def test_the_cache_knows_an_org_by_its_id_in_either_length():
    """The identity URL gives 18 characters; the 15-character form names the same org."""
    long, short = _Org("00D000000000001AAA", "Same__c"), _Org("00D000000000001", "Other__c")
    describe_object(long, "Contact")
    assert "Same__c" in {f.name for f in describe_object(short, "Contact")}
    assert short.calls == 0
    describe_object(short, "Contact", refresh=True)
    assert short.calls == 1
    clear_describe_cache()
    describe_object(long, "Contact")
    assert long.calls == 2


def test_a_client_that_cannot_name_its_org_is_never_served_from_the_cache():
    unknown = _Org(None, "Mine__c")
    describe_object(_Org("00D000000000001AAA", "Theirs__c"), "Contact")
    for _ in range(2):
        assert "Mine__c" in {f.name for f in describe_object(unknown, "Contact")}
    assert unknown.calls == 2
