"""What a reconciliation reads, end to end over HTTPS: Id listings through query, queryAll and a
Bulk queryAll job, reads by `WHERE Id IN (...)`, and the control mutations (delete, undelete,
purge, late commit) as the data API and the truth endpoint show them.

The org here has no dirty rows, so no record is served twice and every listing can be compared
with the truth endpoint exactly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests

from gtm_pipeline.emulator.ids import make_id
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.emulator.testing import EmulatorControlError, EmulatorHandle
from gtm_pipeline_tests.support.emulator import Api, connect

LISTING = "SELECT Id, SystemModstamp, IsDeleted FROM Contact"
COMPARED = ("LastName", "Email", "SystemModstamp", "IsDeleted")
BY_ID_FIELDS = "Id, " + ", ".join(COMPARED)
BATCH_200 = {"Sforce-Query-Options": "batchSize=200"}
COUNTS = {"Account": 30, "Contact": 1000, "Opportunity": 10}


@pytest.fixture()
def clean_org() -> Org:
    return Org.generate(seed=23, counts=COUNTS, dirty_ratio=0.0)


@pytest.fixture()
def handle(start_emulator, clean_org: Org) -> EmulatorHandle:
    return start_emulator(org=clean_org)


@pytest.fixture()
def clean_api(handle: EmulatorHandle) -> Iterator[Api]:
    client = connect(handle)
    yield client
    client.session.close()


def follow(api: Api, first: requests.Response) -> list[dict]:
    """Every page body of a query from its first response, following nextRecordsUrl."""
    assert first.status_code == 200, first.text
    bodies = [first.json()]
    while not bodies[-1]["done"]:
        more = api.more(bodies[-1]["nextRecordsUrl"])
        assert more.status_code == 200, more.text
        bodies.append(more.json())
    return bodies


def pages(api: Api, soql: str, *, all_rows: bool, batch_size: int | None = None) -> list[dict]:
    return follow(api, api.query(soql, all_rows=all_rows, batch_size=batch_size))


def records(bodies: list[dict]) -> list[dict]:
    return [record for body in bodies for record in body["records"]]


def truth(handle: EmulatorHandle) -> dict[str, dict]:
    return {row["Id"]: row for row in handle.control.truth("Contact")}


def listed(rows: list[dict]) -> dict[str, tuple[str, bool]]:
    return {row["Id"]: (row["SystemModstamp"], row["IsDeleted"]) for row in rows}


def mutate(handle: EmulatorHandle, op: str, record_id: str, **extra) -> dict:
    [result] = handle.control.mutate({"op": op, "object": "Contact", "id": record_id, **extra})
    return result


def bin_and_purge(handle: EmulatorHandle, ids: list[str]) -> tuple[list[str], list[str]]:
    """Delete ids[0:5]; purge ids[0:2] from the recycle bin and ids[5] straight away.

    Returns (in the recycle bin, purged)."""
    for record_id in ids[:5]:
        mutate(handle, "delete", record_id)
    for record_id in ids[:2] + ids[5:6]:
        mutate(handle, "purge", record_id)
    return ids[2:5], ids[:2] + ids[5:6]


def by_id_soql(ids: list[str]) -> str:
    quoted = ",".join(f"'{record_id}'" for record_id in ids)
    return f"SELECT {BY_ID_FIELDS} FROM Contact WHERE Id IN ({quoted})"  # noqa: S608


def get_compact(api: Api, resource: str, soql: str, **kwargs):
    """GET with the SOQL percent-encoded only where it must be (quotes and commas left as is)."""
    return api.get(f"/{resource}/?q={quote(soql, safe=chr(39) + ',=()*')}", **kwargs)


# --- Id listings over REST --------------------------------------------------------------------


def test_id_listing_pages_through_query_all_with_deleted_rows_and_without_purged(
    handle: EmulatorHandle, clean_api: Api
) -> None:
    ids = list(truth(handle))
    binned, purged = bin_and_purge(handle, ids)
    bodies = pages(clean_api, LISTING, all_rows=True, batch_size=200)
    assert [len(body["records"]) for body in bodies] == [200, 200, 200, 200, 197]
    assert {body["totalSize"] for body in bodies} == {997}
    for body in bodies[:-1]:
        locator, offset = body["nextRecordsUrl"].rsplit("-", 1)
        assert locator.startswith("/services/data/v59.0/query/01g")  # queryAll pages too
        assert int(offset) == 200 * (bodies.index(body) + 1)
    assert "nextRecordsUrl" not in bodies[-1]
    rows = records(bodies)
    assert {tuple(row) for row in rows} == {("attributes", "Id", "SystemModstamp", "IsDeleted")}
    expected = {i: (r["SystemModstamp"], r["IsDeleted"]) for i, r in truth(handle).items()}
    assert listed(rows) == expected and len(rows) == len(expected)
    assert sorted(i for i, (_, deleted) in listed(rows).items() if deleted) == sorted(binned)
    assert not set(purged) & set(listed(rows))


def test_id_listing_through_query_has_live_rows_only(
    handle: EmulatorHandle, clean_api: Api
) -> None:
    ids = list(truth(handle))
    binned, purged = bin_and_purge(handle, ids)
    bodies = pages(clean_api, LISTING, all_rows=False, batch_size=500)
    assert [len(body["records"]) for body in bodies] == [500, 494]
    rows = listed(records(bodies))
    live = {i: (r["SystemModstamp"], False) for i, r in truth(handle).items() if not r["IsDeleted"]}
    assert rows == live
    assert not (set(binned) | set(purged)) & set(rows)


def test_id_listing_honours_the_page_size_policy(handle: EmulatorHandle, clean_api: Api) -> None:
    handle.control.configure(page_size={"mode": "random", "minimum": 1, "seed": 5})
    bodies = pages(clean_api, LISTING, all_rows=True, batch_size=300)
    sizes = [len(body["records"]) for body in bodies]
    assert len(set(sizes[:-1])) > 1 and max(sizes) <= 300  # never assume page sizes
    assert listed(records(bodies)) == listed(list(truth(handle).values()))


# --- reads by Id ------------------------------------------------------------------------------


def test_600_ids_in_one_query_return_exactly_the_matching_records(
    handle: EmulatorHandle, clean_api: Api
) -> None:
    ids = list(truth(handle))
    binned, purged = bin_and_purge(handle, ids)
    never = make_id("003", 999_999)  # well formed, never existed
    asked = ids[:597] + [never, ids[10][:15], ids[10]]  # a 15-character form and a repeat
    soql = by_id_soql(asked)
    assert len(asked) == 600 and len(soql) > 12_600
    rows = truth(handle)
    wanted = [i for i in ids[:597] if i in rows]
    for resource, all_rows in (("query", False), ("queryAll", True)):
        first = get_compact(clean_api, resource, soql, headers=BATCH_200)
        assert len(first.request.path_url) < 13_000  # quotes and commas cost one byte each
        bodies = follow(clean_api, first)
        expected = {i for i in wanted if all_rows or not rows[i]["IsDeleted"]}
        served = records(bodies)
        assert [len(body["records"]) for body in bodies] == [200, 200, len(expected) - 400]
        assert {body["totalSize"] for body in bodies} == {len(expected)} == {len(served)}
        assert {r["Id"] for r in served} == expected
        for record in served:
            assert [record[k] for k in COMPARED] == [rows[record["Id"]][k] for k in COMPARED]
    assert set(binned) <= set(wanted) and not set(purged) & set(wanted)


def test_ids_read_in_chunks_encoded_by_requests_page_like_any_query(
    handle: EmulatorHandle, clean_api: Api
) -> None:
    ids = list(truth(handle))
    binned, _ = bin_and_purge(handle, ids)
    rows = truth(handle)
    seen: list[dict] = []
    for start in range(0, 600, 300):  # 300 Ids: about 8,200 bytes once URL-encoded
        chunk = by_id_soql(ids[start : start + 300])
        seen += records(pages(clean_api, chunk, all_rows=True, batch_size=200))
    assert sorted(r["Id"] for r in seen) == sorted(i for i in ids[:600] if i in rows)
    assert {r["Id"] for r in seen if r["IsDeleted"]} == set(binned)


# --- Bulk API 2.0 ------------------------------------------------------------------------------


def bulk_rows(api: Api, soql: str, operation: str, max_records: int) -> list[list[dict]]:
    """Run a query job to completion and read every result set by locator."""
    created = api.session.post(
        f"{api.base}/jobs/query",
        json={"operation": operation, "query": soql, "contentType": "CSV"},
        headers=api.headers(),
        timeout=30,
    )
    assert created.status_code == 200, created.text
    job_id = created.json()["id"]
    while api.get(f"/jobs/query/{job_id}").json()["state"] != "JobComplete":
        pass
    sets, locator = [], None
    while locator != "null":
        params = {"maxRecords": max_records, **({"locator": locator} if locator else {})}
        response = api.get(f"/jobs/query/{job_id}/results", params=params)
        assert response.status_code == 200, response.text
        assert response.text.split("\n", 1)[0] == '"Id","SystemModstamp","IsDeleted"'
        rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
        assert int(response.headers["Sforce-NumberOfRecords"]) == len(rows)
        sets.append(rows)
        locator = response.headers["Sforce-Locator"]
    return sets


def test_bulk_query_all_lists_ids_stamps_and_deleted_flags_by_locator(
    handle: EmulatorHandle, clean_api: Api
) -> None:
    ids = list(truth(handle))
    binned, purged = bin_and_purge(handle, ids)
    sets = bulk_rows(clean_api, LISTING, "queryAll", max_records=300)
    assert [len(rows) for rows in sets] == [300, 300, 300, 97]
    rows = [row for rows in sets for row in rows]
    expected = {
        i: (r["SystemModstamp"].replace("+0000", "Z"), "true" if r["IsDeleted"] else "false")
        for i, r in truth(handle).items()
    }
    assert {r["Id"]: (r["SystemModstamp"], r["IsDeleted"]) for r in rows} == expected
    assert len(rows) == len(expected) and not set(purged) & set(expected)
    assert {r["Id"] for r in rows if r["IsDeleted"] == "true"} == set(binned)
    live = [row for rows in bulk_rows(clean_api, LISTING, "query", 5000) for row in rows]
    assert {r["IsDeleted"] for r in live} == {"false"} and len(live) == len(rows) - len(binned)


# --- control mutations, as the data API shows them --------------------------------------------


def one(api: Api, record_id: str, *, all_rows: bool) -> list[dict]:
    fields = "Id, LastName, SystemModstamp, IsDeleted"
    soql = f"SELECT {fields} FROM Contact WHERE Id = '{record_id}'"  # noqa: S608
    response = api.query(soql, all_rows=all_rows)
    assert response.status_code == 200, response.text
    return response.json()["records"]


def test_delete_then_undelete_move_the_stamp_and_the_flag(
    handle: EmulatorHandle, clean_api: Api
) -> None:
    record_id, before = next(iter(truth(handle).items()))
    deleted = mutate(handle, "delete", record_id)
    assert deleted["system_modstamp"] > before["SystemModstamp"]
    assert one(clean_api, record_id, all_rows=False) == []
    [binned] = one(clean_api, record_id, all_rows=True)
    assert (binned["IsDeleted"], binned["SystemModstamp"]) == (True, deleted["system_modstamp"])
    assert truth(handle)[record_id]["IsDeleted"] is True
    patched = clean_api.patch(
        "/composite/sobjects",
        {"records": [{"attributes": {"type": "Contact"}, "id": record_id, "Title": "X"}]},
    ).json()
    assert patched[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"

    undeleted = mutate(handle, "undelete", record_id)
    assert undeleted["system_modstamp"] >= deleted["system_modstamp"]  # stamps are whole seconds
    [live] = one(clean_api, record_id, all_rows=False)
    assert (live["IsDeleted"], live["SystemModstamp"]) == (False, undeleted["system_modstamp"])
    assert live["LastName"] == before["LastName"]
    assert truth(handle)[record_id]["SystemModstamp"] == undeleted["system_modstamp"]


def test_a_purged_record_is_returned_by_nothing(handle: EmulatorHandle, clean_api: Api) -> None:
    ids = list(truth(handle))
    victim = ids[3]
    mutate(handle, "delete", victim)
    assert mutate(handle, "purge", victim) == {"op": "purge", "object": "Contact", "id": victim}
    assert one(clean_api, victim, all_rows=False) == one(clean_api, victim, all_rows=True) == []
    by_id = get_compact(clean_api, "queryAll", by_id_soql(ids[:10])).json()["records"]
    assert victim not in {r["Id"] for r in by_id} and len(by_id) == 9
    listing = records(pages(clean_api, LISTING, all_rows=True))
    assert victim not in {r["Id"] for r in listing} and len(listing) == 999
    bulk = [row for rows in bulk_rows(clean_api, LISTING, "queryAll", 5000) for row in rows]
    assert victim not in {r["Id"] for r in bulk} and len(bulk) == 999
    assert victim not in truth(handle) and len(truth(handle)) == 999
    with pytest.raises(EmulatorControlError, match="never existed or purged"):
        mutate(handle, "undelete", victim)


def test_late_commits_show_stamps_older_than_what_was_already_read(
    handle: EmulatorHandle, clean_api: Api
) -> None:
    ids = list(truth(handle))
    anchor = mutate(handle, "update", ids[0], fields={"Title": "Now"})
    mark = anchor["system_modstamp"].replace(".000+0000", "Z")
    since = f"SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp >= {mark}"  # noqa: S608
    assert [r["Id"] for r in records(pages(clean_api, since, all_rows=False))] == [ids[0]]

    changed = mutate(handle, "late_commit", ids[1], fields={"LastName": "Late"}, age_seconds=600)
    new = {"op": "late_commit", "object": "Contact", "fields": {"LastName": "New"}}
    [created] = handle.control.mutate({**new, "age_seconds": 600})
    assert created["created"] is True and changed["created"] is False
    assert changed["system_modstamp"] < anchor["system_modstamp"]
    # The high-water mark already passed them: a window from it never returns them ...
    after = records(pages(clean_api, since, all_rows=False))
    assert [r["Id"] for r in after] == [ids[0]]
    # ... but an Id listing does, with the stamps they were committed with.
    rows = listed(records(pages(clean_api, LISTING, all_rows=True)))
    assert rows[ids[1]] == (changed["system_modstamp"], False)
    assert rows[created["id"]] == (created["system_modstamp"], False)
    by_id = get_compact(clean_api, "query", by_id_soql([ids[1], created["id"]])).json()
    assert {r["Id"]: r["LastName"] for r in by_id["records"]} == {
        ids[1]: "Late",
        created["id"]: "New",
    }
    oracle = truth(handle)
    assert oracle[ids[1]]["LastName"] == "Late" and oracle[created["id"]]["LastName"] == "New"


# --- the truth endpoint ------------------------------------------------------------------------


def test_truth_lists_every_record_not_purged_with_every_field(
    handle: EmulatorHandle, clean_api: Api, clean_org: Org
) -> None:
    ids = list(truth(handle))
    binned, purged = bin_and_purge(handle, ids)
    fields = {f["name"] for f in clean_api.get("/sobjects/Contact/describe").json()["fields"]}
    oracle = truth(handle)
    assert len(oracle) == 997 and not set(purged) & set(oracle)
    assert all(set(row) == fields for row in oracle.values())  # no dirt in this org
    assert {i for i, row in oracle.items() if row["IsDeleted"]} == set(binned)
    assert oracle == {i: clean_org.record("Contact", i) for i in oracle}
