"""Transform: raw Salesforce pages to canonical columns, pure and without any I/O."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pandas as pd
import pytest

from gtm_pipeline.sync.entities import ACCOUNTS, OPPORTUNITIES, PERSONS, FieldMapping
from gtm_pipeline.sync.extract import flatten_records
from gtm_pipeline.sync.transform import (
    MappingError,
    clean_text,
    domain_from_website,
    parse_modstamp,
    to_canonical,
)

STAMP = "2024-03-01T10:20:30.000+0000"


def contacts(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base = {
        "Id": [f"003{i:015d}" for i in range(n)],
        "Email": ["a@example.com"] * n,
        "FirstName": ["Ada"] * n,
        "LastName": ["Lovelace"] * n,
        "Title": [None] * n,
        "Phone": [None] * n,
        "AccountId": [None] * n,
        "SystemModstamp": [STAMP] * n,
    }
    base.update(columns)
    return pd.DataFrame(base)


def test_emails_are_lowercased_and_trimmed():
    raw = contacts(Email=["  Ada@Example.COM ", "BOB@X.IO", "\tc@d.org\n", "ÉLÈVE@École.fr"])
    out = to_canonical(PERSONS, raw)
    assert out["email"].tolist() == ["ada@example.com", "bob@x.io", "c@d.org", "élève@école.fr"]


def test_emails_are_lowercased_even_when_a_tenant_mapping_says_none():
    mappings = [
        m if m.target != "email" else FieldMapping("email", "Email") for m in PERSONS.mappings
    ]
    out = to_canonical(PERSONS, contacts(Email=["MiXeD@Case.com"]), mappings)
    assert out.loc[0, "email"] == "mixed@case.com"


def test_blank_text_becomes_missing_and_text_is_trimmed():
    raw = contacts(FirstName=["", "   ", "\t\n", None, "  Ada  "], Title=["x"] * 5)
    out = to_canonical(PERSONS, raw)
    assert out["first_name"].isna().tolist() == [True, True, True, True, False]
    assert out.loc[4, "first_name"] == "Ada"


def test_clean_text_turns_numbers_in_text_fields_into_text():
    out = clean_text(pd.Series([12, 3.5, None, " x "], dtype=object))
    assert out.tolist()[:2] == ["12", "3.5"] and pd.isna(out[2]) and out[3] == "x"


@pytest.mark.parametrize(
    ("website", "domain"),
    [
        ("https://www.Example.com/about", "example.com"),
        ("http://example.com", "example.com"),
        ("example.com", "example.com"),
        ("www.example.com", "example.com"),
        ("WWW.EXAMPLE.COM", "example.com"),
        ("https://example.com:8443/x?y=1", "example.com"),
        ("https://shop.example.co.uk/?q=1", "shop.example.co.uk"),
        ("http://www.example.com?x=1", "example.com"),
        ("www.example.com#contact", "example.com"),
        ("//example.com/path", "example.com"),
        ("example.com.", "example.com"),
        ("http://user:secret@example.com/", "example.com"),
        ("info@example.com", "example.com"),
        ("ftp://files.example.org", "files.example.org"),
        ("https://münchen.de", "münchen.de"),
        ("https://my-site.example.io/", "my-site.example.io"),
        ("N/A", None),
        ("-", None),
        ("none", None),
        ("localhost", None),
        ("https://www.", None),
        ("https:/example.com", None),
        ("http://10.0.0.1/", None),
        ("", None),
        (None, None),
    ],
)
def test_domain_extraction_from_website_forms(website, domain):
    out = domain_from_website(clean_text(pd.Series([website], dtype=object)))
    assert (None if pd.isna(out[0]) else out[0]) == domain


def test_domain_extraction_is_linear_on_long_garbage():
    garbage = pd.Series(["a" * 20_000, "a." * 10_000 + "_", "x@" * 10_000], dtype=object)
    started = time.perf_counter()
    out = domain_from_website(garbage)
    assert time.perf_counter() - started < 2
    assert out.isna().all()


def test_accounts_get_a_domain_column_from_their_website():
    raw = pd.DataFrame(
        {
            "Id": ["001A", "001B"],
            "Name": ["Acme", "Globex"],
            "Website": ["https://www.acme.com/", "  "],
            "SystemModstamp": [STAMP, STAMP],
        }
    )
    out = to_canonical(ACCOUNTS, raw)
    assert out["domain"].tolist()[0] == "acme.com" and pd.isna(out["domain"][1])


def test_modstamps_parse_to_aware_utc_in_every_salesforce_form():
    out = parse_modstamp(
        pd.Series(
            [
                "2024-03-01T10:20:30.000+0000",
                "2024-03-01T12:20:30.000+0200",
                "2024-03-01T10:20:30Z",
                "2024-03-01T10:20:30.000+00:00",
            ]
        )
    )
    expected = datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)
    assert [t.to_pydatetime() for t in out] == [expected] * 4
    assert str(out.dt.tz) == "UTC"


def test_a_page_without_system_modstamp_is_a_mapping_error():
    raw = contacts(Email=["a@b.co"]).drop(columns=["SystemModstamp"])
    with pytest.raises(MappingError, match="SystemModstamp"):
        to_canonical(PERSONS, raw)


def test_mapped_custom_fields_go_to_their_column_or_json_and_unmapped_ones_are_dropped():
    raw = contacts(
        Email=["a@b.co", "c@d.co"],
        Fit_Score__c=[81.5, None],
        Region__c=["EMEA", "AMER"],
        Owner_Note__c=["x", None],
    )
    mappings = [
        *PERSONS.mappings,
        FieldMapping("title", "region__c"),
        FieldMapping("custom_fields.fit", "Fit_Score__c"),
    ]
    out = to_canonical(PERSONS, raw, mappings)
    assert out["title"].tolist() == ["EMEA", "AMER"]
    assert out["custom_fields"].tolist() == [{"fit": 81.5}, {"fit": None}]


def test_no_custom_fields_means_missing_not_an_empty_dict():
    out = to_canonical(PERSONS, contacts(Email=["a@b.co"]))
    assert pd.isna(out.loc[0, "custom_fields"])


def test_relationship_fields_are_flattened_and_mapped_case_insensitively():
    records = [
        {
            "attributes": {"type": "Contact", "url": "/x"},
            "Id": "003A",
            "email": "A@B.CO",
            "SystemModstamp": STAMP,
            "Account": {"attributes": {"type": "Account"}, "Industry": "Energy"},
        },
        {"attributes": {"type": "Contact"}, "Id": "003B", "SystemModstamp": STAMP, "Account": None},
    ]
    raw = flatten_records(records)
    assert not any("attributes" in c for c in raw.columns)
    mappings = [*PERSONS.mappings, FieldMapping("custom_fields.industry", "Account.Industry")]
    out = to_canonical(PERSONS, raw, mappings)
    industries = [c["industry"] for c in out["custom_fields"]]
    assert industries == ["Energy", None]
    assert out.loc[0, "email"] == "a@b.co"
    assert pd.isna(out.loc[0, "first_name"])  # optional source absent from the page


def test_required_source_missing_is_a_mapping_error_naming_it():
    raw = contacts(Email=["a@b.co"]).drop(columns=["Id"])
    with pytest.raises(MappingError, match="'Id'"):
        to_canonical(PERSONS, raw)
    custom = [*PERSONS.mappings, FieldMapping("custom_fields.tier", "Tier__c", required=True)]
    with pytest.raises(MappingError, match="Tier__c"):
        to_canonical(PERSONS, contacts(Email=["a@b.co"]), custom)


def test_unknown_transform_is_a_mapping_error():
    mappings = [*PERSONS.mappings, FieldMapping("title", "Title", transform="titlecase")]
    with pytest.raises(MappingError, match="titlecase"):
        to_canonical(PERSONS, contacts(Email=["a@b.co"]), mappings)


@pytest.mark.parametrize(
    ("transform", "expected"), [("trim", "Mixed Case"), ("uppercase", "MIXED CASE")]
)
def test_named_text_transforms_apply(transform, expected):
    mappings = [*PERSONS.mappings, FieldMapping("title", "Title", transform=transform)]
    out = to_canonical(PERSONS, contacts(Title=["  Mixed Case "]), mappings)
    assert out.loc[0, "title"] == expected


def test_typed_columns_are_left_raw_for_the_coercion_gate():
    raw = pd.DataFrame(
        {
            "Id": ["006A"],
            "Name": ["Deal"],
            "StageName": ["Won"],
            "CloseDate": ["2024-02-30"],
            "AccountId": ["001A"],
            "Amount": ["$3.5M"],
            "SystemModstamp": [STAMP],
        }
    )
    out = to_canonical(OPPORTUNITIES, raw)
    assert out.loc[0, "close_date"] == "2024-02-30" and out.loc[0, "amount"] == "$3.5M"


def test_is_deleted_follows_the_source_and_defaults_to_false():
    assert not to_canonical(PERSONS, contacts(Email=["a@b.co"]))["is_deleted"].any()
    flagged = contacts(Email=["a@b.co", "c@d.co"], IsDeleted=[True, None])
    assert to_canonical(PERSONS, flagged)["is_deleted"].tolist() == [True, False]


def test_output_index_is_positional_whatever_the_input_index():
    raw = contacts(Email=["a@b.co", "c@d.co"]).set_axis([17, 3])
    assert to_canonical(PERSONS, raw).index.tolist() == [0, 1]
