"""simple-salesforce, used as the connector uses it, against the emulator over real HTTPS."""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from gtm_pipeline.emulator.testing import CAPinnedSession, obtain_tokens

SOQL = "SELECT Id, Email, Account.Name FROM Contact ORDER BY SystemModstamp, Id"
BATCH_200 = {"Sforce-Query-Options": "batchSize=200"}


def _client(handle, version: str = "59.0") -> Salesforce:
    session = CAPinnedSession(handle.info["ca_bundle"])
    tokens = obtain_tokens(handle.info, session=session)
    return Salesforce(
        instance_url=tokens["instance_url"],
        session_id=tokens["access_token"],
        session=session,
        version=version,
    )


@pytest.fixture()
def sf(emulator) -> Salesforce:
    return _client(emulator)


def test_query_and_query_more_page_by_page(sf: Salesforce, small_org) -> None:
    expected = small_org.execute_query(SOQL, include_deleted=False)
    page = sf.query(SOQL, headers=BATCH_200)
    records = list(page["records"])
    sizes = [len(page["records"])]
    while not page["done"]:
        page = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True, headers=BATCH_200)
        records += page["records"]
        sizes.append(len(page["records"]))
    assert sizes == [200, 200, expected.total_size - 400]
    assert records == expected.page(0, expected.total_size)
    assert records[0]["Account"]["attributes"]["type"] == "Account"
    usage = sf.api_usage["api-usage"]
    assert (usage.used, usage.total) == (3, 15000)


def test_query_more_by_locator_id(sf: Salesforce) -> None:
    first = sf.query(SOQL, headers=BATCH_200)
    locator = first["nextRecordsUrl"].rsplit("/", 1)[1]
    second = sf.query_more(locator, headers=BATCH_200)
    assert len(second["records"]) == 200
    assert second["records"][0]["Id"] != first["records"][0]["Id"]


def test_query_all_iter_follows_every_page(sf: Salesforce, emulator, small_org) -> None:
    emulator.control.configure(page_size={"mode": "random", "seed": 5, "minimum": 50})
    records = list(sf.query_all_iter(SOQL, headers=BATCH_200))
    expected = small_org.execute_query(SOQL, include_deleted=False)
    assert [r["Id"] for r in records] == [r["Id"] for r in expected.page(0, expected.total_size)]
    assert emulator.control.stats()["calls"]["query_more"] >= 2  # 451 rows, pages of <= 200
    deleted_too = list(sf.query_all_iter("SELECT Id FROM Account", include_deleted=True))
    assert (
        len(deleted_too)
        == small_org.execute_query("SELECT Id FROM Account", include_deleted=True).total_size
    )


def test_count_matches_the_records_of_each_window(sf: Salesforce, small_org) -> None:
    records = sf.query_all("SELECT SystemModstamp FROM Contact")["records"]
    middle = sorted(r["SystemModstamp"] for r in records)[len(records) // 2]
    counts = []
    for where in (f"SystemModstamp < {middle}", f"SystemModstamp >= {middle}"):
        answer = sf.query(f"SELECT COUNT() FROM Contact WHERE {where}")  # noqa: S608
        served = sf.query_all(f"SELECT Id FROM Contact WHERE {where}")["records"]  # noqa: S608
        assert answer == {"totalSize": len({r["Id"] for r in served}), "done": True, "records": []}
        counts.append(answer["totalSize"])
    assert all(counts) and sum(counts) == small_org.count("Contact")


def test_count_over_query_all_includes_a_deleted_record(start_emulator, fresh_org) -> None:
    handle = start_emulator(org=fresh_org)
    sf = _client(handle)
    total = sf.query("SELECT COUNT() FROM Contact")["totalSize"]
    victim = sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 1")["records"][0]["Id"]
    [deleted] = handle.control.mutate({"op": "delete", "object": "Contact", "id": victim})
    stamp = deleted["system_modstamp"]
    since = f"SELECT COUNT() FROM Contact WHERE SystemModstamp >= {stamp}"  # noqa: S608
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == total - 1
    assert sf.query("SELECT COUNT() FROM Contact", include_deleted=True)["totalSize"] == total
    assert sf.query(since)["totalSize"] == 0
    # query, not query_all: simple-salesforce's query_all reports as totalSize the number of
    # records it read, which is 0 for COUNT()
    assert sf.query(since, include_deleted=True) == {"totalSize": 1, "done": True, "records": []}
    in_bin = "SELECT COUNT() FROM Contact WHERE IsDeleted = true"
    assert sf.query(in_bin, include_deleted=True)["totalSize"] == 1
    assert handle.control.stats()["calls"]["queryAll"] == 3


def test_describe_and_sobject_describe(sf: Salesforce) -> None:
    assert sf.Contact.describe()["name"] == "Contact"
    assert sf.restful("sobjects/Opportunity/describe")["keyPrefix"] == "006"


def test_composite_update_through_restful(start_emulator, fresh_org) -> None:
    handle = start_emulator(org=fresh_org)
    sf = _client(handle)
    ids = [r["Id"] for r in sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 3")["records"]]
    body = {
        "allOrNone": False,
        "records": [{"attributes": {"type": "Contact"}, "id": i, "Title": "VP"} for i in ids],
    }
    results = sf.restful("composite/sobjects", method="PATCH", json=body)
    assert [r["success"] for r in results] == [True, True, True]
    assert [r["id"] for r in results] == ids
    titles = {r["Id"]: r["Title"] for r in handle.control.truth("Contact")}
    assert [titles[i] for i in ids] == ["VP"] * 3
    too_many = {"records": body["records"] * 67}
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite/sobjects", method="PATCH", json=too_many)
    assert caught.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_errors_map_to_simple_salesforce_exceptions(sf: Salesforce, emulator) -> None:
    with pytest.raises(SalesforceMalformedRequest) as malformed:
        sf.query("SELECT Id FORM Contact")
    assert malformed.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful("sobjects/Nope/describe")
    emulator.control.add_fault(kind="status", status=503, times=1)
    with pytest.raises(SalesforceGeneralError) as unavailable:
        sf.query("SELECT Id FROM Account")
    assert unavailable.value.status == 503
    emulator.control.configure(daily_api_limit=0)
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.query("SELECT Id FROM Account")
    assert refused.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def test_expired_session_mid_run(sf: Salesforce, emulator) -> None:
    emulator.control.add_fault(kind="expire_sessions", after_calls=1)
    first = sf.query(SOQL, headers=BATCH_200)
    with pytest.raises(SalesforceExpiredSession) as expired:
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert expired.value.content[0]["errorCode"] == "INVALID_SESSION_ID"


def test_other_api_versions(start_emulator) -> None:
    sf = _client(start_emulator(), version="62.0")
    page = sf.query(SOQL, headers=BATCH_200)
    assert page["nextRecordsUrl"].startswith("/services/data/v62.0/query/")
    assert page["records"][0]["attributes"]["url"].startswith("/services/data/v62.0/")
