"""The REST data API over HTTPS: query/queryAll paging, locators, describe, collections, errors."""

from __future__ import annotations

import re

import pytest

from gtm_pipeline.emulator.testing import EmulatorControlError
from gtm_pipeline_tests.support.emulator import Api, connect

CONTACTS = "SELECT Id, Email, SystemModstamp FROM Contact ORDER BY SystemModstamp, Id"
LOCATOR_URL = re.compile(r"^/services/data/v(\d+\.\d)/query/(01g[0-9A-Za-z]{15})-(\d+)$")


def read_all(api: Api, soql: str, **kwargs) -> tuple[list[dict], list[dict]]:
    """Every page body and every record of a query, following nextRecordsUrl."""
    first = api.query(soql, **kwargs)
    assert first.status_code == 200, first.text
    bodies = [first.json()]
    while not bodies[-1]["done"]:
        response = api.more(bodies[-1]["nextRecordsUrl"])
        assert response.status_code == 200, response.text
        bodies.append(response.json())
    return bodies, [r for body in bodies for r in body["records"]]


def test_query_pages_with_batch_size(api: Api, small_org) -> None:
    bodies, records = read_all(api, CONTACTS, batch_size=200)
    total = small_org.execute_query(CONTACTS, include_deleted=False).total_size
    assert [len(b["records"]) for b in bodies] == [200, 200, total - 400]
    assert all(b["totalSize"] == total for b in bodies)
    assert [b["done"] for b in bodies] == [False, False, True]
    assert "nextRecordsUrl" not in bodies[-1]
    first_url = LOCATOR_URL.match(bodies[0]["nextRecordsUrl"])
    assert first_url is not None and first_url.group(1) == "59.0" and first_url.group(3) == "200"
    assert records == small_org.execute_query(CONTACTS, include_deleted=False).page(0, total)
    assert list(bodies[0]) == ["totalSize", "done", "nextRecordsUrl", "records"]
    assert records[0]["attributes"] == {
        "type": "Contact",
        "url": f"/services/data/v59.0/sobjects/Contact/{records[0]['Id']}",
    }


@pytest.mark.parametrize(("asked", "served"), [(None, 451), (50, 200), (5000, 451), (300, 300)])
def test_batch_size_is_clamped_to_200_2000(api: Api, asked, served) -> None:
    response = api.query("SELECT Id FROM Contact", batch_size=asked)
    assert len(response.json()["records"]) == served


def test_batch_size_must_be_a_number(api: Api) -> None:
    response = api.get(
        "/query",
        params={"q": "SELECT Id FROM Contact"},
        headers={"Sforce-Query-Options": "x=1, batchSize=lots"},
    )
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_QUERY_OPTIONS"


@pytest.mark.parametrize("path", ["/query", "/query/", "/queryAll", "/queryAll/"])
def test_both_slash_forms_answer(api: Api, small_org, path: str) -> None:
    response = api.get(path, params={"q": "SELECT Id FROM Account"})
    assert response.status_code == 200
    expected = small_org.execute_query("SELECT Id FROM Account", include_deleted=True)
    assert response.json()["totalSize"] == expected.total_size
    assert response.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_any_api_version_is_served_and_echoed(api: Api) -> None:
    api.version = "61.0"
    body = api.query(CONTACTS, batch_size=200).json()
    assert body["nextRecordsUrl"].startswith("/services/data/v61.0/query/01g")
    assert body["records"][0]["attributes"]["url"].startswith("/services/data/v61.0/sobjects/")
    api.version = "banana"
    assert api.query(CONTACTS).status_code == 404


def test_query_all_sees_deleted_rows_and_its_next_url_reads_query(start_emulator, fresh_org):
    handle = start_emulator(org=fresh_org)
    api = connect(handle)
    victim = api.query("SELECT Id FROM Contact ORDER BY Id LIMIT 1").json()["records"][0]["Id"]
    handle.control.mutate({"op": "delete", "object": "Contact", "id": victim})
    soql = "SELECT Id, IsDeleted FROM Contact"
    live = api.query(soql).json()
    assert victim not in {r["Id"] for r in live["records"]}
    everything = api.query(soql, all_rows=True, batch_size=200).json()
    assert everything["totalSize"] == live["totalSize"] + 1
    deleted = [r for r in everything["records"] if r["IsDeleted"]]
    assert [r["Id"] for r in deleted] == [victim]
    insert = {"op": "insert", "object": "Contact", "fields": {"LastName": "Extra"}}
    handle.control.mutate([insert] * 250)
    paged = api.query(soql, all_rows=True, batch_size=200).json()
    assert LOCATOR_URL.match(paged["nextRecordsUrl"])  # queryAll pages continue under /query/
    assert handle.control.stats()["calls"]["queryAll"] == 2


def test_query_result_is_a_snapshot(start_emulator, fresh_org) -> None:
    handle = start_emulator(org=fresh_org)
    api = connect(handle)
    insert = {"op": "insert", "object": "Contact", "fields": {"LastName": "Page"}}
    handle.control.mutate([insert] * 200)
    first = api.query("SELECT Id FROM Contact", batch_size=200).json()
    handle.control.mutate([insert] * 5)
    rest = api.more(first["nextRecordsUrl"]).json()
    assert first["totalSize"] == len(first["records"]) + len(rest["records"])
    later = api.query("SELECT Id FROM Contact").json()["totalSize"]
    assert later == first["totalSize"] + 5


def test_locators_unknown_malformed_and_expired(start_emulator, clock) -> None:
    handle = start_emulator(session_lifetime=30 * 86400)
    api = connect(handle)
    first = api.query(CONTACTS, batch_size=200).json()
    bad = [
        "/query/01gRO0000000000AAA-200",
        "/query/not-a-locator",
        first["nextRecordsUrl"].rsplit("-", 1)[0] + "-99999",
        first["nextRecordsUrl"].rsplit("-", 1)[0] + "-0",
    ]
    for path in bad:
        response = api.get(path.removeprefix("/services/data/v59.0"))
        assert response.status_code == 400, path
        assert response.json() == [
            {"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}
        ]
    # A page can be fetched again (a client retrying after a network error needs that).
    again = [api.more(first["nextRecordsUrl"]).json() for _ in range(2)]
    assert again[0] == again[1]
    clock.advance(2 * 86400 - 1)
    assert api.more(first["nextRecordsUrl"]).status_code == 200
    clock.advance(2)
    expired = api.more(first["nextRecordsUrl"])
    assert expired.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_locator_lifetime_is_configurable(api: Api, emulator, clock) -> None:
    emulator.control.configure(locator_lifetime=60)
    first = api.query(CONTACTS, batch_size=200).json()
    clock.advance(61)
    assert api.more(first["nextRecordsUrl"]).status_code == 400


def test_oldest_cursor_is_released_beyond_the_open_limit(api: Api, emulator) -> None:
    emulator.control.configure(max_open_cursors=2)
    urls = [api.query(CONTACTS, batch_size=200).json()["nextRecordsUrl"] for _ in range(3)]
    statuses = [api.more(url).status_code for url in urls]
    assert statuses == [400, 200, 200]


def test_fixed_page_size_override(api: Api, emulator) -> None:
    emulator.control.configure(page_size=37)
    bodies, records = read_all(api, CONTACTS, batch_size=200)
    assert [len(b["records"]) for b in bodies[:-1]] == [37] * (len(bodies) - 1)
    assert len(records) == bodies[0]["totalSize"] == len({r["Id"] for r in records}) + 1


def test_random_page_sizes_are_seeded_and_below_the_asked_size(api: Api, emulator) -> None:
    emulator.control.configure(page_size={"mode": "random", "seed": 3, "minimum": 10})
    bodies, records = read_all(api, CONTACTS, batch_size=200)
    sizes = [len(b["records"]) for b in bodies]
    # The last page holds whatever is left, which may be fewer than the minimum.
    assert all(10 <= size <= 200 for size in sizes[:-1]) and 1 <= sizes[-1] <= 200
    assert len(set(sizes[:-1])) > 1
    assert len(records) == bodies[0]["totalSize"]
    # Retrying a page gives the same page.
    assert api.more(bodies[0]["nextRecordsUrl"]).json() == bodies[1]
    emulator.control.configure(page_size=None)
    assert len(api.query(CONTACTS, batch_size=200).json()["records"]) == 200


def test_bad_page_size_settings_are_refused(emulator) -> None:
    for bad in (0, {"mode": "sideways"}, {"mode": "fixed"}, {"mode": "random", "size": "x"}):
        with pytest.raises(EmulatorControlError) as caught:
            emulator.control.configure(page_size=bad)
        assert caught.value.status == 400
    assert emulator.control.config()["page_size"]["mode"] == "asked"


def test_query_errors_are_json_arrays(api: Api) -> None:
    malformed = api.query("SELECT Id FORM Contact")
    assert malformed.status_code == 400
    assert malformed.json()[0]["errorCode"] == "MALFORMED_QUERY"
    invalid = api.query("SELECT Bogus__c FROM Contact")
    assert invalid.json()[0]["errorCode"] == "INVALID_FIELD"
    empty = api.get("/query", params={"q": " "})
    assert empty.status_code == 400 and empty.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_count_is_one_call_answered_with_total_size_alone(api: Api, emulator, small_org) -> None:
    capped = api.query("SELECT COUNT() FROM Contact LIMIT 100")
    assert capped.status_code == 200
    assert capped.json() == {"totalSize": 100, "done": True, "records": []}
    assert list(capped.json()) == ["totalSize", "done", "records"]
    # more rows than a page holds, still one answer with no nextRecordsUrl
    everyone = api.query("SELECT COUNT() FROM Contact", batch_size=200, all_rows=True)
    assert everyone.json() == {
        "totalSize": small_org.count("Contact", include_deleted=True),
        "done": True,
        "records": [],
    }
    assert [r.headers["Sforce-Limit-Info"] for r in (capped, everyone)] == [
        "api-usage=1/15000",
        "api-usage=2/15000",
    ]
    calls = emulator.control.stats()["calls"]
    assert (calls["query"], calls["queryAll"]) == (1, 1)


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT COUNT() FROM Contact ORDER BY SystemModstamp",
        "SELECT Id, COUNT() FROM Contact",
        "SELECT COUNT(Id) FROM Contact",
    ],
)
def test_count_rules_are_malformed_query(api: Api, soql: str) -> None:
    response = api.query(soql)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "MALFORMED_QUERY"


@pytest.mark.parametrize("suffix", ["", "/"])
def test_describe(api: Api, suffix: str) -> None:
    response = api.get(f"/sobjects/Contact/describe{suffix}")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Contact" and body["keyPrefix"] == "003"
    names = {f["name"] for f in body["fields"]}
    assert {"Id", "Email", "MailingAddress", "SystemModstamp"} <= names
    missing = api.get("/sobjects/Nope__c/describe")
    assert missing.status_code == 404
    assert missing.json() == [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    ]


@pytest.mark.parametrize("suffix", ["", "/"])
def test_global_describe_lists_the_readable_objects_without_fields(
    start_emulator, fresh_org, suffix: str
) -> None:
    handle = start_emulator(org=fresh_org)
    api = connect(handle)
    api.version = "62.0"
    body = api.get(f"/sobjects{suffix}").json()
    assert (body["encoding"], body["maxBatchSize"]) == ("UTF-8", 200)
    names = [entry["name"] for entry in body["sobjects"]]
    assert names == sorted(fresh_org.object_names())
    account = next(entry for entry in body["sobjects"] if entry["name"] == "Account")
    described = fresh_org.describe("Account")
    assert {k: v for k, v in account.items() if k != "urls"} == {
        k: v for k, v in described.items() if k not in ("urls", "fields")
    }
    assert account["urls"] == {
        "sobject": "/services/data/v62.0/sobjects/Account",
        "describe": "/services/data/v62.0/sobjects/Account/describe",
        "rowTemplate": "/services/data/v62.0/sobjects/Account/{ID}",
    }
    handle.control.configure(unreadable_objects=["Lead"])
    hidden = api.get("/sobjects").json()["sobjects"]
    assert [entry["name"] for entry in hidden] == [n for n in names if n != "Lead"]
    assert handle.control.stats()["calls"]["describe"] == 2


def test_composite_update_per_record_results(start_emulator, fresh_org) -> None:
    handle = start_emulator(org=fresh_org)
    api = connect(handle)
    ids = [
        r["Id"] for r in api.query("SELECT Id FROM Contact ORDER BY Id LIMIT 2").json()["records"]
    ]
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Contact"}, "id": ids[0], "Title": "CTO"},
            {"attributes": {"type": "Contact"}, "id": ids[1], "Bogus__c": 1},
        ],
    }
    response = api.patch("/composite/sobjects", body)
    assert response.status_code == 200
    assert response.headers["Sforce-Limit-Info"].startswith("api-usage=")
    results = response.json()
    assert results[0] == {"id": ids[0], "success": True, "errors": []}
    assert results[1]["success"] is False
    assert results[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
    titles = {r["Id"]: r["Title"] for r in handle.control.truth("Contact")}
    assert titles[ids[0]] == "CTO"
    rolled_back = api.patch(
        "/composite/sobjects/",
        {
            **body,
            "allOrNone": True,
            "records": [{**body["records"][0], "Title": "CEO"}, body["records"][1]],
        },
    ).json()
    assert rolled_back[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert {r["Id"]: r["Title"] for r in handle.control.truth("Contact")}[ids[0]] == "CTO"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"records": [{"attributes": {"type": "Contact"}, "id": "x"}] * 201}, "EXCEEDED_ID_LIMIT"),
        ({"records": "nope"}, "JSON_PARSER_ERROR"),
        ({"allOrNone": "yes", "records": []}, "JSON_PARSER_ERROR"),
        ([1, 2], "JSON_PARSER_ERROR"),
    ],
)
def test_composite_envelope_errors(api: Api, body, code: str) -> None:
    response = api.patch("/composite/sobjects", body)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == code


def test_composite_rejects_broken_json(api: Api) -> None:
    response = api.session.patch(
        api.base + "/composite/sobjects", data=b"{", headers=api.headers(), timeout=10
    )
    assert response.status_code == 400 and response.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_unknown_paths_and_methods(api: Api, emulator) -> None:
    for path in ("/sobjects/Contact/003000000000000AAA/bogus", "/limits/", "/query/a/b"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.json()[0]["errorCode"] == "NOT_FOUND"
    outside = api.session.get(emulator.info["instance_url"] + "/favicon.ico", timeout=10)
    assert outside.status_code == 404 and outside.json()[0]["errorCode"] == "NOT_FOUND"
    wrong_method = api.session.post(api.base + "/query", headers=api.headers(), timeout=10)
    assert wrong_method.status_code == 405
    assert wrong_method.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer 00Dfake!ARnope", "Basic dXNlcjpwdw=="]
)
def test_missing_or_bad_bearer_is_401(api: Api, authorization) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = api.session.get(api.base + "/sobjects/Contact/describe", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    assert "Sforce-Limit-Info" not in response.headers


def test_oauth_scheme_is_accepted_too(api: Api) -> None:
    response = api.session.get(
        api.base + "/sobjects/Account/describe",
        headers={"Authorization": f"OAuth {api.access_token}"},
        timeout=10,
    )
    assert response.status_code == 200


def test_usage_header_counts_every_data_call_and_the_budget_ends_in_403(start_emulator) -> None:
    handle = start_emulator(daily_api_limit=3)
    api = connect(handle)
    seen = [api.get("/sobjects/Account/describe").headers["Sforce-Limit-Info"] for _ in range(2)]
    assert seen == ["api-usage=1/3", "api-usage=2/3"]
    assert api.query("SELECT Bogus FROM Contact").status_code == 400  # counted all the same
    refused = api.get("/sobjects/Account/describe")
    assert refused.status_code == 403
    assert refused.json() == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    # Control calls and OAuth do not count; raising the limit or resetting usage reopens.
    assert handle.control.stats()["api_usage"] == {"used": 3, "limit": 3}
    handle.control.configure(daily_api_limit=5)
    assert api.get("/sobjects/Account/describe").headers["Sforce-Limit-Info"] == "api-usage=4/5"
    handle.control.configure(reset_usage=True)
    assert api.get("/sobjects/Account/describe").headers["Sforce-Limit-Info"] == "api-usage=1/5"
