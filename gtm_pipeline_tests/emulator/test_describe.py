"""The emulated describe carries the attributes real orgs send, with Salesforce's own values.

Standard fields follow the Salesforce Field Reference (precision and scale of Account
`AnnualRevenue` 18/0, Opportunity `Amount` 18/2 and `Probability` 3/0, address latitude and
longitude 18/15 as parts of their address); the custom fields give the writeback rule a formula,
an auto-number, a unique external id and score fields of scale 0 and 2 to decide on.
"""

from __future__ import annotations

import pytest

from gtm_pipeline.emulator.org import Org


@pytest.fixture(scope="module")
def org() -> Org:
    return Org.generate(seed=7, counts={"Account": 3, "Contact": 5, "Opportunity": 2})


def fields(org: Org, sobject: str) -> dict[str, dict]:
    return {f["name"]: f for f in org.describe(sobject)["fields"]}


def numbers(field: dict) -> tuple[str, int, int]:
    return field["type"], field["precision"], field["scale"]


def test_standard_number_fields_have_salesforces_precision_and_scale(org):
    assert numbers(fields(org, "Account")["AnnualRevenue"]) == ("currency", 18, 0)
    opportunity = fields(org, "Opportunity")
    assert numbers(opportunity["Amount"]) == ("currency", 18, 2)
    assert numbers(opportunity["Probability"]) == ("percent", 3, 0)


@pytest.mark.parametrize(("sobject", "prefix"), [("Contact", "Mailing"), ("Account", "Billing")])
def test_addresses_have_geolocation_parts_and_a_read_only_compound(org, sobject, prefix):
    described = fields(org, sobject)
    for part in ("Latitude", "Longitude"):
        field = described[f"{prefix}{part}"]
        assert numbers(field) == ("double", 18, 15)
        assert field["compoundFieldName"] == f"{prefix}Address" and field["updateable"]
    accuracy = described[f"{prefix}GeocodeAccuracy"]
    assert accuracy["type"] == "picklist" and accuracy["compoundFieldName"] == f"{prefix}Address"
    compound = described[f"{prefix}Address"]
    assert compound["type"] == "address" and not compound["updateable"]
    assert compound["compoundFieldName"] is None


def test_the_address_value_carries_what_its_geolocation_parts_hold(org):
    record = next(r for r in org.truth("Contact") if r["MailingAddress"])
    update = {"attributes": {"type": "Contact"}, "id": record["Id"], "MailingLatitude": 59.9139,
              "MailingLongitude": 10.7522, "MailingGeocodeAccuracy": "Street"}  # fmt: skip
    [result] = org.update_collection([update], all_or_none=False)
    assert result["success"], result
    address = org.record("Contact", record["Id"])["MailingAddress"]
    assert (address["latitude"], address["longitude"]) == (59.9139, 10.7522)
    assert address["geocodeAccuracy"] == "Street" and address["city"] == record["MailingCity"]


def test_name_parts_name_their_compound(org):
    contact = fields(org, "Contact")
    assert contact["FirstName"]["compoundFieldName"] == "Name"
    assert contact["LastName"]["compoundFieldName"] == "Name"
    assert contact["Name"]["compoundFieldName"] is None and not contact["Name"]["updateable"]


@pytest.mark.parametrize("sobject", ["Account", "Contact", "Opportunity"])
def test_custom_fields_cover_every_kind_the_writeback_rule_decides_on(org, sobject):
    described = fields(org, sobject)
    formula = described["Days_Since_Activity__c"]
    assert formula["calculated"] and formula["calculatedFormula"] and not formula["updateable"]
    number = described["Record_Number__c"]
    assert number["autoNumber"] and number["type"] == "string" and not number["updateable"]
    key = described["External_Key__c"]
    assert key["externalId"] and key["unique"] and key["idLookup"] and key["updateable"]
    assert numbers(described["Legacy_Score__c"]) == ("double", 3, 0)
    assert numbers(described["Fit_Score__c"]) == ("double", 18, 2)
    assert all(described[n]["custom"] for n in ("Legacy_Score__c", "External_Key__c"))
    assert not any(f["autoNumber"] or f["externalId"] for f in described.values()
                   if not f["custom"])  # fmt: skip


def test_auto_numbers_always_have_a_value(org):
    values = [r["Record_Number__c"] for r in org.truth("Contact")]
    assert all(values) and len(set(values)) == len(values)
