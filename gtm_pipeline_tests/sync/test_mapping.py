"""Field mapping, pure: paths, compounds, transforms, required fields, duplicates, validation."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtm_pipeline.emulator.schema import OBJECTS
from gtm_pipeline.salesforce.metadata import FieldInfo, parse_describe
from gtm_pipeline.sync.bulk_csv import plan_bulk_query
from gtm_pipeline.sync.entities import ACCOUNTS, PERSONS, FieldMapping
from gtm_pipeline.sync.extract import flatten_records
from gtm_pipeline.sync.mapping import (
    MappingError,
    apply_field_mappings,
    canonical_targets,
    check_mappings,
    is_address_compound,
    merge_mappings,
    register_transform,
    source_fields,
    transform_names,
    unregister_transform,
    validate_mappings,
)
from gtm_pipeline.sync.transform import to_canonical

STAMP = "2024-03-01T10:20:30.000+0000"


def fields_of(sobject: str) -> list[FieldInfo]:
    return parse_describe(OBJECTS[sobject].describe())


CONTACT = fields_of("Contact")
RELATED = {"Account": fields_of("Account")}


@pytest.fixture()
def reverse_transform() -> Iterator[str]:
    register_transform("reverse", lambda s: s.str[::-1])
    yield "custom:reverse"
    unregister_transform("reverse")


def apply(mappings, frame, tenant_id="acme"):
    return apply_field_mappings(PERSONS, frame, mappings, tenant_id=tenant_id)


def test_dot_paths_read_related_fields_and_null_parents_give_null():
    raw = flatten_records(
        [
            {"Id": "003A", "Account": {"attributes": {"type": "Account"}, "Industry": "Energy"}},
            {"Id": "003B", "Account": None},
        ]
    )
    out, _ = apply([FieldMapping("custom_fields.industry", "Account.Industry")], raw)
    assert out["custom_fields"].tolist() == [{"industry": "Energy"}, {"industry": None}]


def test_a_dot_path_whose_parent_is_null_on_every_row_is_null_not_missing():
    raw = pd.DataFrame({"Id": ["003A"], "Account": [None]})
    mapping = FieldMapping("custom_fields.industry", "Account.Industry", required=True)
    out, _ = apply([mapping], raw)
    assert out.loc[0, "custom_fields"] == {"industry": None}


def test_name_splits_into_first_and_last_name_when_they_are_mapped_from_it():
    raw = pd.DataFrame({"Name": ["Ada Lovelace", "Mary Ann  Smith", "Cher", "  ", None]})
    mappings = [FieldMapping("first_name", "Name"), FieldMapping("last_name", "Name")]
    out, _ = apply(mappings, raw)
    assert out["first_name"].tolist()[:2] == ["Ada", "Mary Ann"]
    assert out["last_name"].tolist()[:3] == ["Lovelace", "Smith", "Cher"]
    assert out["first_name"].iloc[2:].isna().all() and out["last_name"].iloc[3:].isna().all()


def test_address_compound_flattens_into_five_parts():
    raw = flatten_records(
        [
            {
                "Id": "003A",
                "MailingAddress": {
                    "street": " 1 Main St ",
                    "city": "Oslo",
                    "state": None,
                    "postalCode": "0150",
                    "country": "Norway",
                    "latitude": None,
                },  # fmt: skip
            },
            {"Id": "003B", "MailingAddress": None},
        ]
    )
    out, _ = apply([FieldMapping("custom_fields.mailing", "MailingAddress", "trim")], raw)
    assert out.loc[0, "custom_fields"] == {
        "mailing_street": "1 Main St", "mailing_city": "Oslo", "mailing_state": None,
        "mailing_postal_code": "0150", "mailing_country": "Norway",
    }  # fmt: skip
    assert set(out.loc[1, "custom_fields"].values()) == {None}


@pytest.mark.parametrize(
    ("transform", "expected"),
    [
        ("none", "Mixed Case"),
        ("trim", "Mixed Case"),
        ("lowercase", "mixed case"),
        ("uppercase", "MIXED CASE"),
    ],  # fmt: skip
)
def test_builtin_transforms(transform, expected):
    out, _ = apply(
        [FieldMapping("title", "Title", transform)], pd.DataFrame({"Title": [" Mixed Case "]})
    )
    assert out.loc[0, "title"] == expected


def test_a_registered_custom_transform_applies_and_is_listed(reverse_transform):
    assert reverse_transform in transform_names()
    assert transform_names()[:4] == ["none", "trim", "lowercase", "uppercase"]
    out, _ = apply(
        [FieldMapping("title", "Title", reverse_transform)], pd.DataFrame({"Title": ["abc"]})
    )
    assert out.loc[0, "title"] == "cba"


def test_a_custom_transform_that_fails_is_a_mapping_error_naming_it():
    register_transform("boom", lambda s: 1 / 0)
    try:
        with pytest.raises(MappingError, match="custom:boom.*ZeroDivisionError"):
            apply([FieldMapping("title", "Title", "custom:boom")], pd.DataFrame({"Title": ["x"]}))
    finally:
        unregister_transform("boom")


@pytest.mark.parametrize("name", ["custom:missing", "titlecase", "custom:", ""])
def test_unknown_transforms_are_refused(name):
    with pytest.raises(MappingError, match="unknown transform"):
        check_mappings(PERSONS, [FieldMapping("title", "Title", name)])


def test_a_transform_name_must_be_an_identifier():
    with pytest.raises(MappingError, match="plain identifier"):
        register_transform("bad name", lambda s: s)


def test_missing_required_source_names_tenant_entity_and_field():
    mapping = FieldMapping("custom_fields.tier", "Tier__c", required=True)
    with pytest.raises(MappingError) as caught:
        apply([mapping], pd.DataFrame({"Id": ["003A"]}), tenant_id="acme-eu")
    message = str(caught.value)
    assert "'acme-eu'" in message and "persons" in message and "'Tier__c'" in message


def test_missing_optional_source_is_null():
    out, _ = apply([FieldMapping("title", "Title")], pd.DataFrame({"Id": ["003A"]}))
    assert out["title"].isna().all()


def test_duplicate_targets_warn_and_the_last_mapping_wins():
    raw = pd.DataFrame({"Title": ["CTO"], "Notes__c": ["from notes"]})
    mappings = [FieldMapping("title", "Title"), FieldMapping("title", "Notes__c")]
    out, warnings = apply(mappings, raw)
    assert out.loc[0, "title"] == "from notes"
    assert len(warnings) == 1 and "'title'" in warnings[0] and "'Notes__c'" in warnings[0]
    assert "wins" in warnings[0]


def test_stored_mappings_override_defaults_in_place_and_new_targets_follow():
    merged = merge_mappings(
        PERSONS.mappings,
        [FieldMapping("custom_fields.region", "Region__c"), FieldMapping("title", "Notes__c")],
    )
    assert [m.target for m in merged] == [
        *(m.target for m in PERSONS.mappings),
        "custom_fields.region",
    ]
    assert next(m for m in merged if m.target == "title").source == "Notes__c"
    assert check_mappings(PERSONS, merged) == []


@pytest.mark.parametrize(
    "source",
    [
        "Id FROM User --",
        "Name, (SELECT Id FROM Cases)",
        "Region__c\n",
        "a..b",
        "",
        "1abc",
        "Account.",
        "x" * 81,
        "Name' OR '1'='1",
    ],  # fmt: skip
)
def test_sources_that_are_not_plain_paths_are_refused(source):
    with pytest.raises(MappingError, match="not a Salesforce field path"):
        check_mappings(PERSONS, [FieldMapping("title", source)])


@pytest.mark.parametrize(
    "target",
    [
        "region",
        "custom_fields.",
        "custom_fields.a b",
        "tenant_id",
        "duplicate_of",
        "deleted_reason",
    ],
)
def test_unknown_targets_are_refused(target):
    with pytest.raises(MappingError, match="unknown target"):
        check_mappings(PERSONS, [FieldMapping(target, "Title")])


def test_external_id_always_comes_from_id():
    with pytest.raises(MappingError, match="external_id"):
        check_mappings(PERSONS, [FieldMapping("external_id", "Email")])


def test_canonical_targets_are_the_table_columns():
    assert canonical_targets(ACCOUNTS) == [
        "external_id", "name", "domain", "website", "industry", "employee_count", "annual_revenue"
    ]  # fmt: skip


def test_validation_accepts_real_fields_paths_and_compounds():
    mappings = merge_mappings(
        PERSONS.mappings,
        [
            FieldMapping("custom_fields.region", "region__c"),
            FieldMapping("custom_fields.industry", "Account.Industry"),
            FieldMapping("custom_fields.mailing", "MailingAddress"),
            FieldMapping("first_name", "Name"),
        ],
    )
    assert validate_mappings("persons", mappings, CONTACT, tenant_id="t", related=RELATED) == []


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("Shoe_Size__c", "field 'Shoe_Size__c' does not exist"),
        ("Owner.Name", "relationship 'Owner' does not exist"),
        ("Account.Shoe_Size__c", "field 'Shoe_Size__c' does not exist"),
        ("BillingAddress", "field 'BillingAddress' does not exist"),
    ],
)
def test_validation_refuses_what_describe_does_not_have(source, problem):
    with pytest.raises(MappingError, match=problem) as caught:
        validate_mappings(
            "persons", [FieldMapping("custom_fields.x", source)], CONTACT, tenant_id="acme",
            related=RELATED,
        )  # fmt: skip
    assert "'acme'" in str(caught.value) and "Contact" in str(caught.value)


def test_validation_returns_duplicate_warnings():
    mappings = [FieldMapping("title", "Title"), FieldMapping("title", "Notes__c")]
    warnings = validate_mappings("persons", mappings, CONTACT, tenant_id="t")
    assert len(warnings) == 1


def test_source_fields_are_each_selected_once():
    mappings = [FieldMapping("first_name", "Name"), FieldMapping("last_name", "name"),
                FieldMapping("custom_fields.a", "Account.Industry")]  # fmt: skip
    assert source_fields(mappings) == ["Name", "Account.Industry"]


def test_to_canonical_without_custom_mapping_keeps_the_defaults():
    raw = pd.DataFrame(
        {
            "Id": ["003A"],
            "Email": [" A@B.CO "],
            "FirstName": ["Ada"],
            "SystemModstamp": [STAMP],
            "Region__c": ["EMEA"],
        }  # fmt: skip
    )
    out = to_canonical(PERSONS, raw)
    assert out.loc[0, "email"] == "a@b.co" and out.loc[0, "first_name"] == "Ada"
    assert pd.isna(out.loc[0, "custom_fields"])  # unmapped custom fields are not carried


values = st.one_of(st.none(), st.text(), st.floats(allow_nan=True), st.integers())
KNOWN_NAMES = ["Title", "Name", "Account.Industry", "MailingAddress", "custom_fields.k",
               "first_name", "title", "lowercase"]  # fmt: skip
names = st.one_of(st.text(max_size=12), st.sampled_from(KNOWN_NAMES))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "Title": values,
                "Name": values,
                "Account.Industry": values,
                "MailingAddress.city": values,
            }
        ),
        max_size=6,
    ),  # fmt: skip
    mappings=st.lists(
        st.builds(
            FieldMapping, target=names, source=names, transform=names, required=st.booleans()
        ),
        max_size=4,
    ),
)
def test_apply_never_raises_anything_but_mapping_error(rows, mappings):
    raw = pd.DataFrame(rows, columns=["Title", "Name", "Account.Industry", "MailingAddress.city"])
    try:
        out, warnings = apply(mappings, raw)
    except MappingError:
        return
    assert len(out) == len(raw) and isinstance(warnings, list)


# -- address compounds: decided by the describe's type, the name only as the fallback -------------


def _part(name: str, compound: str, type_: str = "string") -> dict:
    return {"name": name, "label": name, "type": type_, "updateable": True,
            "compoundFieldName": compound}  # fmt: skip


def _lead_like(*extra: dict) -> list[FieldInfo]:
    """A describe shaped like a real Lead's: the address compound is called just `Address`."""
    parts = [_part(p, "Address") for p in ("Street", "City", "State", "PostalCode", "Country")]
    compound = {"name": "Address", "label": "Address", "type": "address", "updateable": False}
    ident = {"name": "Id", "label": "Id", "type": "id", "updateable": False}
    return parse_describe({"fields": [ident, compound, *parts, *extra]})


def test_an_address_compound_called_just_address_is_one():
    """Lead and Organization name their address `Address`: seven letters, which a rule on the
    name's length (`len > 7`) took for a plain field."""
    lead = _lead_like()
    assert is_address_compound("Address", lead) and is_address_compound("Address")
    assert not is_address_compound("Street", lead) and not is_address_compound("Address.city")
    raw = flatten_records([{"Id": "00QA", "Address": {"city": "Oslo", "street": "Karl Johan 1"}}])
    out, _ = apply([FieldMapping("custom_fields.home", "Address")], raw)
    assert out["custom_fields"][0]["home_city"] == "Oslo"
    assert out["custom_fields"][0]["home_street"] == "Karl Johan 1"
    mappings = [FieldMapping("custom_fields.home", "Address")]
    assert validate_mappings("persons", mappings, lead, tenant_id="acme") == []


def test_the_describe_overrules_the_name_and_a_disagreement_is_refused():
    email = {"name": "FromAddress", "label": "From", "type": "email", "updateable": True}
    custom = {"name": "Ship_To__c", "label": "Ship to", "type": "address", "custom": True,
              "updateable": False}  # fmt: skip
    fields = _lead_like(email, custom)
    assert not is_address_compound("FromAddress", fields)  # an email field, whatever its name
    assert is_address_compound("Ship_To__c", fields)  # an address, whatever its name
    with pytest.raises(MappingError, match="'FromAddress' is not an address compound field"):
        validate_mappings(
            "persons", [FieldMapping("custom_fields.f", "FromAddress")], fields, tenant_id="t"
        )
    with pytest.raises(MappingError, match="map its components"):
        validate_mappings(
            "persons", [FieldMapping("custom_fields.s", "Ship_To__c")], fields, tenant_id="t"
        )


class _LeadShapedClient:
    """A describe client whose Contact is shaped like a Lead: its address is `Address`."""

    org_id = None

    def describe(self, sobject: str) -> dict:
        parts = [_part(p, "Address") for p in ("Street", "City", "State", "PostalCode", "Country")]
        compound = {"name": "Address", "label": "Address", "type": "address", "updateable": False}
        return {"fields": [{"name": "Id", "label": "Id", "type": "id"}, compound, *parts]}


def test_a_bulk_query_selects_the_parts_of_an_address_called_address():
    """Bulk API 2.0 refuses compound fields, so the plan must recognise `Address` as one."""
    plan = plan_bulk_query(
        _LeadShapedClient(), PERSONS, [FieldMapping("custom_fields.home", "Address")]
    )
    assert "Address," not in plan.soql and "City" in plan.soql and "Street" in plan.soql
    assert plan.compounds["Address.city"] == "City"
