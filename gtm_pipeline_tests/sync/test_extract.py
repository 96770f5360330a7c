"""Flattening a REST page: nested objects become dot-path columns, `attributes` disappears."""

from __future__ import annotations

import pandas as pd

from gtm_pipeline.sync.extract import flatten_records

RECORDS = [
    {
        "attributes": {"type": "Contact", "url": "/c/1"},
        "Id": "003000000000001AAA",
        "Title": None,
        "Account": None,
        "MailingAddress": {"city": "Oslo", "street": None},
    },
    {
        "attributes": {"type": "Contact", "url": "/c/2"},
        "Id": "003000000000002AAA",
        "Title": "CTO",
        "Account": {
            "attributes": {"type": "Account"},
            "Industry": "Energy",
            "Owner": {"attributes": {"type": "User"}, "Name": "Kim"},
        },
        "MailingAddress": None,
    },
]


def test_objects_become_dot_paths_and_a_null_object_gives_nulls():
    frame = flatten_records(RECORDS)
    assert set(frame.columns) == {
        "Id", "Title", "Account.Industry", "Account.Owner.Name",
        "MailingAddress.city", "MailingAddress.street",
    }  # fmt: skip
    first, second = frame.to_dict("records")
    assert pd.isna(first["Account.Industry"]) and pd.isna(first["Account.Owner.Name"])
    assert (second["Account.Industry"], second["Account.Owner.Name"]) == ("Energy", "Kim")
    assert first["MailingAddress.city"] == "Oslo" and pd.isna(second["MailingAddress.city"])
    assert pd.isna(first["Title"]) and second["Title"] == "CTO"


def test_a_relationship_null_in_every_record_stays_a_column_of_its_own():
    frame = flatten_records([{**RECORDS[0], "MailingAddress": None}])
    assert list(frame.columns) == ["Id", "Title", "Account", "MailingAddress"]
    assert frame["Account"].isna().all()


def test_an_empty_page_is_an_empty_frame():
    assert flatten_records([]).empty


def test_objects_that_are_all_empty_keep_their_parent_column():
    frame = flatten_records([{**RECORDS[0], "Account": {"attributes": {"type": "Account"}}}])
    assert "Account" in frame.columns and frame["Account"].isna().all()
