"""SOQL building: only plain identifiers reach the query, windows never skip, fields appear once."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest

from gtm_pipeline.sync.soql import (
    BY_ID_QUERY_BYTES,
    ORDER,
    SoqlBuildError,
    by_id_queries,
    check_identifier,
    check_path,
    datetime_literal,
    deleted_query,
    modified_query,
    select_fields,
)

INJECTIONS = [
    "Name; DELETE",
    "Id FROM Account--",
    "Id FROM Account WHERE Name = 'x'",
    "Name'",
    'Name"',
    "Na'me",
    "Name)",
    "Name,Email",
    "Name Email",
    "Name\n",
    "Name\nFROM Account",
    "Name\r",
    "Name\t",
    " Name",
    "Name ",
    "Ñame",
    "Name\u00e9",
    "Имя",
    "名前",
    "Name\u200b",
    "Name\x00",
    "_Name",
    "1Name",
    "",
    "a" * 81,
]


@pytest.mark.parametrize("name", INJECTIONS)
def test_anything_but_a_plain_identifier_is_refused(name):
    with pytest.raises(SoqlBuildError, match="not a Salesforce identifier"):
        check_identifier(name)


@pytest.mark.parametrize("name", INJECTIONS)
def test_injections_are_refused_as_field_and_object_names(name):
    with pytest.raises(SoqlBuildError):
        modified_query("Contact", ["Email", name], None)
    with pytest.raises(SoqlBuildError):
        modified_query(name, ["Email"], None)
    with pytest.raises(SoqlBuildError):
        deleted_query(name, None)


@pytest.mark.parametrize("value", [None, 5, 1.5, b"Name", ["Name"]])
def test_non_strings_are_refused(value):
    with pytest.raises(SoqlBuildError):
        check_identifier(value)
    with pytest.raises(SoqlBuildError):
        check_path(value)


@pytest.mark.parametrize("name", ["Id", "Name", "Fit_Score__c", "ns__Field__c", "a" * 80, "X1"])
def test_plain_identifiers_pass_unchanged(name):
    assert check_identifier(name) == name


@pytest.mark.parametrize("path", ["Account.Industry", "Owner.Manager.Name", "A.B.C.D.E"])
def test_dot_paths_of_identifiers_pass(path):
    assert check_path(path) == path


@pytest.mark.parametrize(
    "path",
    ["A.B.C.D.E.F", "Account..Name", ".Name", "Name.", "Account. Name", "Account.Na me", "."],
)
def test_malformed_dot_paths_are_refused(path):
    with pytest.raises(SoqlBuildError):
        check_path(path)


def test_an_error_message_never_carries_more_than_80_characters_of_the_input():
    with pytest.raises(SoqlBuildError) as caught:
        check_identifier("x" * 5000 + ";")
    assert len(str(caught.value)) < 150


def test_datetime_literals_are_unquoted_utc_whole_seconds_floored():
    moment = datetime(2024, 3, 5, 7, 8, 9, 999_999, tzinfo=UTC)
    assert datetime_literal(moment) == "2024-03-05T07:08:09Z"
    plus_two = datetime(2024, 3, 5, 1, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=2)))
    assert datetime_literal(plus_two) == "2024-03-04T23:00:00Z"


def test_flooring_only_widens_a_greater_or_equal_window():
    moment = datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    literal = datetime_literal(moment)
    floored = datetime.strptime(literal, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert floored <= moment and moment - floored < timedelta(seconds=1)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        datetime_literal(datetime(2024, 1, 1))  # noqa: DTZ001


def test_field_list_always_has_id_and_modstamp_once_case_insensitively():
    fields = select_fields(
        ["Email", "email", "ID", "systemmodstamp", "Account.Name", "account.name"]
    )
    assert fields == ["Id", "Email", "systemmodstamp", "Account.Name"]
    assert select_fields([]) == ["Id", "SystemModstamp"]
    assert select_fields(["Name"], "IsDeleted", "isdeleted") == [
        "Id",
        "Name",
        "SystemModstamp",
        "IsDeleted",
    ]


def test_modified_query_full_and_incremental():
    assert modified_query("Contact", ["Email", "Email"], None) == (
        "SELECT Id, Email, SystemModstamp FROM Contact ORDER BY SystemModstamp ASC, Id ASC"
    )
    since = datetime(2024, 1, 1, 12, 30, 15, 250_000, tzinfo=UTC)
    assert modified_query("Contact", ["Email"], since) == (
        "SELECT Id, Email, SystemModstamp FROM Contact "
        "WHERE SystemModstamp >= 2024-01-01T12:30:15Z ORDER BY SystemModstamp ASC, Id ASC"
    )
    assert ORDER == "ORDER BY SystemModstamp ASC, Id ASC"


def test_deleted_query_selects_recycle_bin_rows_in_cursor_order():
    assert deleted_query("Account", None) == (
        "SELECT Id, SystemModstamp, IsDeleted FROM Account "
        "WHERE IsDeleted = true ORDER BY SystemModstamp ASC, Id ASC"
    )
    since = datetime(2024, 5, 6, 0, 0, 0, tzinfo=UTC)
    assert deleted_query("Account", since).endswith(
        f"WHERE IsDeleted = true AND SystemModstamp >= 2024-05-06T00:00:00Z {ORDER}"
    )


def test_reads_by_id_are_chunked_under_the_request_line_limit_and_cover_every_id_once():
    ids = [f"003{n:012d}AAA" for n in range(1000)]
    fields = [f"Field_{n}__c" for n in range(40)]
    queries = by_id_queries("Contact", fields, ids)
    assert len(queries) > 1
    for soql in queries:
        assert len(urlencode({"q": soql})) <= BY_ID_QUERY_BYTES  # as requests sends it
    listed = [i for soql in queries for i in re.findall(r"'([^']+)'", soql)]
    assert listed == ids


@pytest.mark.parametrize("bad", ["003' OR Id != '", "short", "003000000000000AAA)", 7])
def test_reads_by_id_refuse_anything_but_record_ids(bad):
    with pytest.raises(SoqlBuildError):
        by_id_queries("Contact", ["Email"], ["003000000000000AAA", bad])
