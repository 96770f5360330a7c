"""Metadata discovery against the emulator: field facts, ordering, writeability and the cache."""

from __future__ import annotations

import pytest

from gtm_pipeline.emulator.testing import emulator_client
from gtm_pipeline.salesforce import metadata
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.salesforce.metadata import (
    MetadataError,
    clear_describe_cache,
    describe_object,
    get_writeable_fields,
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


def test_compound_address_fields_are_left_out(client):
    names = {f.name for f in describe_object(client, "Contact")}
    assert "MailingAddress" not in names and "MailingStreet" in names
    assert "BillingAddress" not in {f.name for f in describe_object(client, "Account")}


def test_standard_fields_come_first_then_custom_each_alphabetical_by_label(client):
    fields = describe_object(client, "Account")
    custom_flags = [f.custom for f in fields]
    first_custom = custom_flags.index(True)
    assert not any(custom_flags[:first_custom]) and all(custom_flags[first_custom:])
    for group in (fields[:first_custom], fields[first_custom:]):
        labels = [f.label.casefold() for f in group]
        assert labels == sorted(labels)


def test_writeable_fields_are_only_the_updateable_ones(client):
    writeable = {f.name for f in get_writeable_fields(client, "Contact")}
    assert {"Fit_Score__c", "Tier__c", "Email"} <= writeable
    assert not {"Id", "SystemModstamp", "Days_Since_Activity__c", "Name"} & writeable
    assert all(f.updateable for f in get_writeable_fields(client, "Contact"))


def test_describe_is_cached_per_org_and_object_until_refreshed(client, emulator):
    before = describes(emulator)
    for _ in range(3):
        describe_object(client, "Contact")
    get_writeable_fields(client, "Contact")
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
