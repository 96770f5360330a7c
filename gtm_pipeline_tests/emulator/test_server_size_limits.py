"""Salesforce's size limits: SOQL statements of 100,000 characters, request heads of 16,384 bytes.

A client that does not chunk a long `WHERE Id IN (...)` must fail here as it would against
Salesforce: 414 (URI too long) or 431 (URI and headers too long) from the front end for a GET,
400 MALFORMED_QUERY for a statement over 100,000 characters (reachable through a Bulk job).
"""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceGeneralError

from gtm_pipeline.emulator.errors import EmulatorError
from gtm_pipeline.emulator.head_limits import MAX_HEAD_BYTES, MAX_URI_BYTES, refused_status
from gtm_pipeline.emulator.ids import make_id
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.emulator.soql_syntax import MAX_SOQL_LENGTH
from gtm_pipeline.emulator.testing import CAPinnedSession, obtain_tokens
from gtm_pipeline_tests.support.emulator import Api

QUERY_PATH = "/services/data/v59.0/query/"
PAGE_414 = "<h1>Bad Message 414</h1><pre>reason: URI Too Long</pre>"
PAGE_431 = "<h1>Bad Message 431</h1><pre>reason: Request Header Fields Too Large</pre>"
TOO_LONG = "SOQL statements can not be longer than 100000 characters."


def by_ids(count: int) -> str:
    quoted = ",".join(f"'{make_id('003', n)}'" for n in range(count))
    return f"SELECT Id FROM Contact WHERE Id IN ({quoted})"  # noqa: S608


def soql_of_length(length: int) -> str:
    """A valid Contact query of exactly `length` characters (an Id list, then blank padding)."""
    text = by_ids((length - len(by_ids(0))) // 21)
    return text + " " * (length - len(text))


def target_of_length(length: int) -> str:
    """A query URL whose request target (path and query string) is `length` bytes."""
    prefix = QUERY_PATH + "?q=SELECT+Id+FROM+Contact+WHERE+LastName+%3D+%27"
    return prefix + "a" * (length - len(prefix) - 3) + "%27"


def scope(target: bytes, headers: list[tuple[bytes, bytes]]) -> dict:
    path, _, query = target.partition(b"?")
    return {"raw_path": path, "query_string": query, "headers": headers}


# --- the limits themselves --------------------------------------------------------------------


def test_the_limits_are_salesforces() -> None:
    assert (MAX_SOQL_LENGTH, MAX_URI_BYTES, MAX_HEAD_BYTES) == (100_000, 16_384, 16_384)


@pytest.mark.parametrize(
    ("uri", "header", "status"),
    [
        (16_384, 0, None),  # no headers at all: exactly at the limit passes
        (16_385, 0, 414),
        (100, 16_384 - 100 - 4 - 1, None),  # "x: value\r\n" costs the name, value and 4 bytes
        (100, 16_384 - 100 - 4, 431),
        (16_000, 500, 431),
        (70_000, 500, 414),  # the URI is checked first
    ],
)
def test_refused_status_counts_uri_then_uri_and_headers(uri, header, status) -> None:
    target = b"/q?" + b"a" * (uri - 3)
    headers = [(b"x", b"v" * header)] if header else []
    assert refused_status(scope(target, headers)) == status


def test_a_statement_over_100000_characters_is_malformed(small_org: Org) -> None:
    exact = soql_of_length(MAX_SOQL_LENGTH)
    assert len(exact) == MAX_SOQL_LENGTH
    assert small_org.execute_query(exact, include_deleted=True).total_size == 0
    with pytest.raises(EmulatorError) as caught:
        small_org.execute_query(exact + " ", include_deleted=True)
    assert caught.value.body() == [{"message": TOO_LONG, "errorCode": "MALFORMED_QUERY"}]
    with pytest.raises(EmulatorError) as caught:  # refused before it is even tokenized
        small_org.plan_query("SELECT Id FROM Contact WHERE Name = 'é" + "\\" * MAX_SOQL_LENGTH)  # noqa: S608
    assert caught.value.message == TOO_LONG


# --- over HTTPS -------------------------------------------------------------------------------


def create_job(api: Api, soql: str):
    return api.session.post(
        f"{api.base}/jobs/query",
        json={"operation": "queryAll", "query": soql},
        headers=api.headers(),
        timeout=30,
    )


def test_a_bulk_job_over_100000_characters_is_malformed_query(api: Api) -> None:
    refused = create_job(api, soql_of_length(MAX_SOQL_LENGTH + 1))
    assert refused.status_code == 400
    assert refused.json() == [{"message": TOO_LONG, "errorCode": "MALFORMED_QUERY"}]
    accepted = create_job(api, soql_of_length(MAX_SOQL_LENGTH))
    assert accepted.status_code == 200, accepted.text


@pytest.mark.parametrize("length", [MAX_URI_BYTES + 1, 70_000, 1_000_000])
def test_a_uri_over_16384_bytes_is_414_whatever_its_size(api: Api, emulator, length) -> None:
    used = emulator.control.stats()["api_usage"]["used"]
    for _ in range(2):  # the same answer every time, and the connection is closed after it
        response = api.get(emulator.info["instance_url"] + target_of_length(length))
        assert len(response.request.path_url) == length
        assert (response.status_code, response.text) == (414, PAGE_414)
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["connection"] == "close"
        assert "Sforce-Limit-Info" not in response.headers
    assert emulator.control.stats()["api_usage"]["used"] == used  # the API never saw them
    assert emulator.control.stats()["calls"]["query"] == 2  # but they were sent
    assert api.query("SELECT Id FROM Contact LIMIT 1").status_code == 200


def test_uri_and_headers_over_16384_bytes_are_431(api: Api, emulator) -> None:
    fits = api.get(emulator.info["instance_url"] + target_of_length(15_000))
    assert fits.status_code == 200, fits.text
    near = api.get(emulator.info["instance_url"] + target_of_length(MAX_URI_BYTES - 100))
    assert (near.status_code, near.text) == (431, PAGE_431)  # the URI alone would fit
    padding = {"X-Padding": "p" * MAX_HEAD_BYTES}
    padded = api.get("/query", params={"q": "SELECT Id FROM Contact"}, headers=padding)
    assert (padded.status_code, padded.text) == (431, PAGE_431)


def test_a_long_statement_sent_as_a_get_meets_the_uri_limit_first(api: Api) -> None:
    response = api.query(soql_of_length(MAX_SOQL_LENGTH + 1))
    assert (response.status_code, response.text) == (414, PAGE_414)


def test_600_ids_encoded_by_requests_do_not_fit_in_one_get(api: Api) -> None:
    """requests encodes `'` and `,` (27 bytes an Id): the URI fits, URI plus headers do not."""
    soql = by_ids(600)
    assert len(soql) < 12_650
    response = api.query(soql)
    assert len(response.request.path_url) < MAX_URI_BYTES
    assert (response.status_code, response.text) == (431, PAGE_431)


def test_simple_salesforce_raises_a_general_error_with_the_page(emulator) -> None:
    session = CAPinnedSession(emulator.info["ca_bundle"])
    tokens = obtain_tokens(emulator.info, session=session)
    sf = Salesforce(
        instance_url=tokens["instance_url"], session_id=tokens["access_token"], session=session
    )
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.query(soql_of_length(20_000))
    assert (caught.value.status, caught.value.content) == (414, PAGE_414)
    assert sf.query("SELECT Id FROM Contact LIMIT 2")["totalSize"] == 2
