"""Bulk API 2.0 query jobs over HTTPS: lifecycle, 412, CSV result sets by locator, controls."""

from __future__ import annotations

import csv
import io

import pytest
from simple_salesforce import Salesforce

from gtm_pipeline.emulator.testing import CAPinnedSession, obtain_tokens
from gtm_pipeline_tests.support.emulator import Api, connect

CONTACTS = "SELECT Id, Email, IsDeleted, SystemModstamp, Account.Name, Fit_Score__c FROM Contact"


def create(api: Api, soql: str = CONTACTS, operation: str = "query", **extra):
    body = {"operation": operation, "query": soql, "columnDelimiter": "COMMA", "lineEnding": "LF"}
    return api.session.post(
        f"{api.base}/jobs/query", json={**body, **extra}, headers=api.headers(), timeout=30
    )


def poll(api: Api, job_id: str) -> dict:
    response = api.get(f"/jobs/query/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def completed_job(api: Api, soql: str = CONTACTS, operation: str = "query") -> str:
    response = create(api, soql, operation)
    assert response.status_code == 200, response.text
    job_id = response.json()["id"]
    while poll(api, job_id)["state"] != "JobComplete":
        pass
    return job_id


def results(api: Api, job_id: str, **params):
    return api.get(f"/jobs/query/{job_id}/results", params=params)


def rows_of(body: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body, newline="")))


def all_result_sets(api: Api, job_id: str, max_records: int) -> list:
    sets, locator = [], None
    while True:
        params = {"maxRecords": max_records, **({"locator": locator} if locator else {})}
        response = results(api, job_id, **params)
        assert response.status_code == 200, response.text
        sets.append(response)
        locator = response.headers["Sforce-Locator"]
        if locator == "null":
            return sets


def test_job_lifecycle_412_before_completion(api: Api, small_org) -> None:
    created = create(api)
    assert created.status_code == 200, created.text
    job = created.json()
    assert job["id"].startswith("750") and len(job["id"]) == 18
    assert (job["state"], job["operation"], job["object"]) == ("UploadComplete", "query", "Contact")
    early = results(api, job["id"])
    assert early.status_code == 412
    assert early.json()[0]["errorCode"] == "JOB_NOT_COMPLETE"
    assert early.json()[0]["message"].startswith("Job is not yet complete")
    assert poll(api, job["id"])["state"] == "InProgress"
    done = poll(api, job["id"])
    assert done["state"] == "JobComplete"
    # total_size, not count(): a few dirty records are served twice, by Bulk as by REST
    total = small_org.execute_query(CONTACTS, include_deleted=False).total_size
    assert done["numberRecordsProcessed"] == total


def test_result_sets_by_locator_cover_the_query(api: Api, small_org) -> None:
    job_id = completed_job(api)
    sets = all_result_sets(api, job_id, max_records=100)
    total = small_org.execute_query(CONTACTS, include_deleted=False).total_size
    assert len(sets) == -(-total // 100) >= 4
    counts = [int(r.headers["Sforce-NumberOfRecords"]) for r in sets]
    assert counts == [100] * (len(sets) - 1) + [total - 100 * (len(sets) - 1)]
    rows = [row for r in sets for row in rows_of(r.text)]
    expected = small_org.execute_query(CONTACTS, include_deleted=False).flat_page(0, total)
    assert [r["Id"] for r in rows] == [e[0] for e in expected]
    assert all(r.headers["content-type"].startswith("text/csv") for r in sets)
    assert list(rows[0]) == ["Id", "Email", "IsDeleted", "SystemModstamp", "Account.Name",
                             "Fit_Score__c"]  # fmt: skip


def test_csv_values_print_like_salesforce(start_emulator, fresh_org) -> None:
    emulator = start_emulator(org=fresh_org)
    api = connect(emulator)
    tricky = 'Head of "Ops", EMEA\nand\r\nAPAC'
    [inserted] = emulator.control.mutate(
        {"op": "insert", "object": "Contact", "fields": {"LastName": "Quote", "Title": tricky}}
    )
    job_id = completed_job(api, "SELECT Id, Title, Email, IsDeleted, SystemModstamp FROM Contact")
    body = results(api, job_id).text
    assert body.splitlines()[0] == '"Id","Title","Email","IsDeleted","SystemModstamp"'
    row = next(r for r in rows_of(body) if r["Id"] == inserted["id"])
    assert row["Title"] == tricky
    assert row["Email"] == ""  # null: an empty value
    assert row["IsDeleted"] == "false"
    assert row["SystemModstamp"].endswith(".000Z") and "T" in row["SystemModstamp"]


def test_query_all_flags_deleted_rows(start_emulator, fresh_org) -> None:
    emulator = start_emulator(org=fresh_org)
    api = connect(emulator)
    victim = next(r["Id"] for r in emulator.control.truth("Contact"))
    emulator.control.mutate({"op": "delete", "object": "Contact", "id": victim})
    soql = "SELECT Id, IsDeleted FROM Contact"
    live = rows_of(results(api, completed_job(api, soql)).text)
    every = rows_of(results(api, completed_job(api, soql, "queryAll")).text)
    assert victim not in {r["Id"] for r in live}
    assert {r["Id"]: r["IsDeleted"] for r in every}[victim] == "true"
    assert len(every) == len(live) + 1


def test_results_are_a_snapshot_at_completion(start_emulator, fresh_org) -> None:
    emulator = start_emulator(org=fresh_org)
    api = connect(emulator)
    soql = "SELECT Id, Title FROM Contact"
    job_id = create(api, soql).json()["id"]
    first, second = (r["Id"] for r in list(emulator.control.truth("Contact"))[:2])
    update = {"op": "update", "object": "Contact", "fields": {"Title": "Before completion"}}
    emulator.control.mutate({**update, "id": first})
    while poll(api, job_id)["state"] != "JobComplete":
        pass
    emulator.control.mutate({**update, "id": second, "fields": {"Title": "After completion"}})
    titles = {r["Id"]: r["Title"] for r in rows_of(results(api, job_id).text)}
    assert titles[first] == "Before completion"
    assert titles[second] != "After completion"


def test_compound_fields_are_refused_but_components_work(api: Api) -> None:
    refused = create(api, "SELECT Id, MailingAddress FROM Contact")
    assert refused.status_code == 400
    assert refused.json() == [
        {"message": "Selecting compound data not supported in Bulk Query", "errorCode": "API_ERROR"}
    ]
    job_id = completed_job(api, "SELECT Id, MailingCity, MailingPostalCode FROM Contact")
    assert list(rows_of(results(api, job_id).text)[0]) == ["Id", "MailingCity", "MailingPostalCode"]


def test_count_is_refused_as_bulk_queries_take_no_aggregate(api: Api) -> None:
    refused = create(api, "SELECT COUNT() FROM Contact")
    assert refused.status_code == 400
    assert refused.json() == [
        {
            "message": "Aggregate functions such as COUNT() are not supported in Bulk API 2.0 "
            "queries",
            "errorCode": "API_ERROR",
        }
    ]


def test_bad_soql_is_refused_at_creation(api: Api) -> None:
    response = create(api, "SELECT Id, Bogus__c FROM Contact")
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_FIELD"
    assert create(api, operation="upsert").json()[0]["errorCode"] == "API_ERROR"


def test_time_alone_completes_a_job(api: Api, clock) -> None:
    job_id = create(api).json()["id"]
    assert results(api, job_id).status_code == 412
    clock.advance(31)
    assert results(api, job_id).status_code == 200


def test_gzip_when_asked(api: Api) -> None:
    job_id = completed_job(api)
    zipped = results(api, job_id, maxRecords=50)
    plain = api.get(
        f"/jobs/query/{job_id}/results",
        params={"maxRecords": 50},
        headers={"Accept-Encoding": "identity"},
    )
    assert zipped.headers.get("Content-Encoding") == "gzip"
    assert "Content-Encoding" not in plain.headers
    assert zipped.text == plain.text  # requests decompressed it


def test_bad_locator_and_max_records(api: Api) -> None:
    job_id = completed_job(api)
    assert results(api, job_id, locator="bm9wZQ").status_code == 400
    assert results(api, job_id, maxRecords=0).status_code == 400


def test_delete_only_finished_jobs_and_abort(api: Api) -> None:
    job_id = create(api).json()["id"]
    url = f"{api.base}/jobs/query/{job_id}"
    early = api.session.delete(url, headers=api.headers(), timeout=30)
    assert early.status_code == 400
    aborted = api.session.patch(url, json={"state": "Aborted"}, headers=api.headers(), timeout=30)
    assert aborted.json()["state"] == "Aborted"
    assert results(api, job_id).status_code == 400
    assert api.session.delete(url, headers=api.headers(), timeout=30).status_code == 204
    assert api.get(f"/jobs/query/{job_id}").status_code == 404


def test_injected_failure_and_bulk_switched_off(api: Api, emulator) -> None:
    emulator.control.configure(bulk_fail_next=1)
    job_id = create(api).json()["id"]
    while (job := poll(api, job_id))["state"] not in ("Failed", "JobComplete"):
        pass
    assert job["state"] == "Failed" and job["errorMessage"]
    assert results(api, job_id).status_code == 400
    assert completed_job(api)  # only the next job failed
    emulator.control.configure(bulk_enabled=False)
    refused = create(api)
    assert refused.status_code == 403
    assert refused.json()[0]["errorCode"] == "FEATURENOTENABLED"
    assert emulator.control.config()["bulk_enabled"] is False


def test_bulk_calls_count_against_the_budget(api: Api, emulator) -> None:
    emulator.control.reset_stats()
    job_id = completed_job(api)
    all_result_sets(api, job_id, max_records=200)
    calls = emulator.control.stats()["calls"]
    assert calls["bulk_create"] == 1 and calls["bulk_job"] == 2 and calls["bulk_results"] == 3
    used = emulator.control.stats()["api_usage"]["used"]
    emulator.control.configure(daily_api_limit=used)
    limited = create(api)
    assert limited.status_code == 403
    assert limited.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def test_simple_salesforce_bulk2_reads_the_emulator(emulator, small_org) -> None:
    session = CAPinnedSession(emulator.info["ca_bundle"])
    tokens = obtain_tokens(emulator.info, session=session)
    sf = Salesforce(
        instance_url=tokens["instance_url"], session_id=tokens["access_token"], session=session
    )
    chunks = list(sf.bulk2.Contact.query("SELECT Id FROM Contact", max_records=200, wait=0))
    ids = [row["Id"] for chunk in chunks for row in rows_of(chunk)]
    assert len(chunks) == 3
    expected = small_org.execute_query("SELECT Id FROM Contact", include_deleted=False)
    assert sorted(ids) == sorted(row[0] for row in expected.flat_page(0, expected.total_size))


@pytest.mark.parametrize("setting", [{"bulk_job_polls": 0}, {"bulk_fail_next": -1}])
def test_bad_bulk_settings_are_refused(emulator, setting) -> None:
    with pytest.raises(Exception, match="400"):
        emulator.control.configure(**setting)
