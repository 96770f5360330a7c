"""The Org contract: describe, snapshots, deleted rows, collection updates and mutations."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from gtm_pipeline.emulator.ids import to18
from gtm_pipeline.emulator.org import EmulatorError, Org

SMALL = {"Account": 30, "Contact": 120, "Opportunity": 40}


@pytest.fixture()
def org() -> Org:
    return Org.generate(seed=3, counts=SMALL, dirty_ratio=0)


def first(org: Org, sobject: str, **match) -> dict:
    return next(r for r in org.truth(sobject) if all(r[k] == v for k, v in match.items()))


def served(org: Org, soql: str, *, include_deleted: bool = False) -> list[dict]:
    result = org.execute_query(soql, include_deleted=include_deleted)
    return result.page(0, result.total_size)


def now_stamp_bounds() -> tuple[str, str]:
    now = datetime.now(UTC)
    fmt = "%Y-%m-%dT%H:%M:%S.000+0000"
    return (now - timedelta(seconds=5)).strftime(fmt), (now + timedelta(seconds=5)).strftime(fmt)


# --- describe -------------------------------------------------------------------------------


def test_describe_shape(org: Org) -> None:
    described = org.describe("contact")
    assert {"name": "Contact", "label": "Contact", "keyPrefix": "003", "custom": False}.items() <= (
        described.items()
    )
    fields = {f["name"]: f for f in described["fields"]}
    required_keys = {
        "name",
        "label",
        "type",
        "length",
        "custom",
        "updateable",
        "createable",
        "nillable",
        "calculated",
        "compoundFieldName",
        "precision",
        "scale",
        "soapType",
        "referenceTo",
        "relationshipName",
        "filterable",
        "sortable",
    }
    assert all(required_keys <= f.keys() for f in fields.values())
    assert fields["MailingAddress"]["type"] == "address"
    assert fields["MailingAddress"]["updateable"] is False
    assert fields["MailingAddress"]["filterable"] is False
    assert fields["MailingStreet"]["compoundFieldName"] == "MailingAddress"
    assert fields["MailingStreet"]["type"] == "textarea"
    assert fields["FirstName"]["compoundFieldName"] == "Name"
    assert fields["Name"]["updateable"] is False
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert fields["AccountId"]["relationshipName"] == "Account"
    for name in ("Fit_Score__c", "Engagement_Score__c", "Combined_Score__c"):
        assert (fields[name]["type"], fields[name]["precision"], fields[name]["scale"]) == (
            "double",
            18,
            2,
        )
        assert fields[name]["custom"] and fields[name]["updateable"]
    assert fields["Tier__c"]["type"] == "string" and fields["Scored_At__c"]["type"] == "datetime"
    assert fields["Region__c"]["type"] == "picklist" and fields["Region__c"]["picklistValues"]
    formula = fields["Days_Since_Activity__c"]
    assert formula["calculated"] is True and formula["updateable"] is False
    for name in ("Id", "IsDeleted", "SystemModstamp", "CreatedDate", "LastModifiedDate"):
        assert fields[name]["updateable"] is False, name


def test_describe_every_object_and_unknown(org: Org) -> None:
    assert org.object_names() == ["Account", "Contact", "Opportunity", "Lead", "Task", "Event"]
    account = {f["name"]: f for f in org.describe("Account")["fields"]}
    assert account["BillingAddress"]["type"] == "address"
    assert account["NumberOfEmployees"]["type"] == "int"
    assert account["AnnualRevenue"]["type"] == "currency"
    opportunity = {f["name"]: f for f in org.describe("Opportunity")["fields"]}
    assert opportunity["CloseDate"]["type"] == "date"
    assert opportunity["Probability"]["type"] == "percent"
    with pytest.raises(EmulatorError) as caught:
        org.describe("Case")
    assert (caught.value.status, caught.value.error_code) == (404, "NOT_FOUND")
    assert caught.value.body() == [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    ]


# --- snapshots and deleted rows -------------------------------------------------------------------


def test_pages_are_a_snapshot_taken_at_query_start(org: Org) -> None:
    result = org.execute_query(
        "SELECT Id, LastName, SystemModstamp, Account.Name FROM Contact ORDER BY Id",
        include_deleted=False,
    )
    before = result.page(0, result.total_size)
    victim, changed, purged = before[0]["Id"], before[1]["Id"], before[2]["Id"]
    account_id = first(org, "Contact", Id=before[3]["Id"])["AccountId"]
    org.mutate({"op": "delete", "object": "Contact", "id": victim})
    org.mutate({"op": "update", "object": "Contact", "id": changed, "fields": {"LastName": "Z"}})
    org.mutate({"op": "purge", "object": "Contact", "id": purged})
    org.mutate({"op": "insert", "object": "Contact", "fields": {"LastName": "New"}})
    org.mutate({"op": "update", "object": "Account", "id": account_id, "fields": {"Name": "Q"}})
    org.update_collection(
        [{"attributes": {"type": "Contact"}, "id": before[4]["Id"], "LastName": "W"}],
        all_or_none=False,
    )
    assert result.page(0, result.total_size) == before
    after = served(org, "SELECT Id, LastName FROM Contact ORDER BY Id")
    assert victim not in {r["Id"] for r in after} and purged not in {r["Id"] for r in after}
    assert {r["Id"]: r["LastName"] for r in after}[changed] == "Z"


def test_deleted_rows_only_with_include_deleted(org: Org) -> None:
    contact = first(org, "Contact")
    org.mutate({"op": "delete", "object": "Contact", "id": contact["Id"]})
    plain = served(org, "SELECT Id FROM Contact")
    assert contact["Id"] not in {r["Id"] for r in plain}
    everything = served(org, "SELECT Id FROM Contact", include_deleted=True)
    assert contact["Id"] in {r["Id"] for r in everything}
    assert all("IsDeleted" not in r for r in everything)
    flagged = served(
        org, "SELECT Id, IsDeleted FROM Contact WHERE IsDeleted = true", include_deleted=True
    )
    assert [(r["Id"], r["IsDeleted"]) for r in flagged] == [(contact["Id"], True)]
    assert served(org, "SELECT Id FROM Contact WHERE IsDeleted = true") == []


# --- sObject Collections ----------------------------------------------------------------------


def update(org: Org, *records: dict, all_or_none: bool = False) -> list[dict]:
    return org.update_collection(list(records), all_or_none=all_or_none)


def rec(record_id: str, sobject: str = "Contact", **fields) -> dict:
    return {"attributes": {"type": sobject}, "id": record_id, **fields}


def test_successful_update_writes_values_and_moves_stamps(org: Org) -> None:
    contact = first(org, "Contact")
    low, high = now_stamp_bounds()
    results = update(
        org,
        rec(contact["Id"], Fit_Score__c=81.456, Tier__c="A", Scored_At__c="2024-07-01T10:00:00Z"),
    )
    assert results == [{"id": contact["Id"], "success": True, "errors": []}]
    after = org.record("Contact", contact["Id"])
    assert after["Fit_Score__c"] == 81.46 and after["Tier__c"] == "A"
    assert after["Scored_At__c"] == "2024-07-01T10:00:00.000+0000"
    assert low <= after["SystemModstamp"] <= high
    assert after["LastModifiedDate"] == after["SystemModstamp"]
    assert after["CreatedDate"] == contact["CreatedDate"]


def _code(result: dict) -> str:
    assert result["success"] is False
    return result["errors"][0]["statusCode"]


def test_each_per_record_error_code(org: Org) -> None:
    contacts = list(org.truth("Contact"))
    deleted = contacts[0]["Id"]
    org.mutate({"op": "delete", "object": "Contact", "id": deleted})
    unknown = to18("003RO0zzzzzzzzz")  # well-formed, but no such record
    results = update(
        org,
        rec(deleted, Tier__c="A"),
        rec(unknown, Tier__c="A"),
        rec("not-an-id", Tier__c="A"),
        rec(contacts[1]["Id"], Bogus__c=1),
        rec(contacts[2]["Id"], SystemModstamp="2024-01-01T00:00:00Z"),
        rec(contacts[3]["Id"], Fit_Score__c="abc"),
        {"id": contacts[4]["Id"], "Tier__c": "A"},
        rec(contacts[5]["Id"], Name="Full Name"),
        rec(contacts[6]["Id"], Tier__c="x" * 21),
        rec(contacts[7]["Id"], sobject="Account", Tier__c="A"),
        rec(contacts[8]["Id"], Tier__c="B"),
    )
    assert [_code(r) for r in results[:-1]] == [
        "ENTITY_IS_DELETED",
        "INVALID_CROSS_REFERENCE_KEY",
        "MALFORMED_ID",
        "INVALID_FIELD",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        "INVALID_TYPE",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "STRING_TOO_LONG",
        "MALFORMED_ID",
    ]
    assert results[3]["errors"][0]["fields"] == ["Bogus__c"]
    assert results[5]["errors"][0]["fields"] == ["Fit_Score__c"]
    assert results[-1] == {"id": contacts[8]["Id"], "success": True, "errors": []}
    assert org.record("Contact", contacts[8]["Id"])["Tier__c"] == "B"
    assert org.record("Contact", contacts[1]["Id"]) == contacts[1]  # failures change nothing


def test_locked_rows_fail_for_the_given_attempts(org: Org) -> None:
    contact = first(org, "Contact")
    org.mutate({"op": "lock", "object": "Contact", "id": contact["Id"], "attempts": 2})
    assert _code(update(org, rec(contact["Id"], Tier__c="A"))[0]) == "UNABLE_TO_LOCK_ROW"
    assert _code(update(org, rec(contact["Id"], Tier__c="A"))[0]) == "UNABLE_TO_LOCK_ROW"
    assert update(org, rec(contact["Id"], Tier__c="A"))[0]["success"] is True


def test_all_or_none_rolls_everything_back(org: Org) -> None:
    a, b = list(org.truth("Contact"))[:2]
    results = update(
        org, rec(a["Id"], Tier__c="A"), rec(b["Id"], Fit_Score__c="abc"), all_or_none=True
    )
    assert _code(results[0]) == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert _code(results[1]) == "INVALID_TYPE_ON_FIELD_IN_RECORD"
    assert org.record("Contact", a["Id"]) == a
    ok = update(org, rec(a["Id"], Tier__c="A"), rec(b["Id"], Tier__c="B"), all_or_none=True)
    assert [r["success"] for r in ok] == [True, True]
    assert org.record("Contact", b["Id"])["Tier__c"] == "B"


def test_more_than_200_records_is_refused_whole(org: Org) -> None:
    contact = first(org, "Contact")
    with pytest.raises(EmulatorError) as caught:
        update(org, *[rec(contact["Id"], Tier__c="A")] * 201)
    assert (caught.value.status, caught.value.error_code) == (400, "EXCEEDED_ID_LIMIT")
    assert org.record("Contact", contact["Id"]) == contact


# --- mutations ------------------------------------------------------------------------------------


def test_update_insert_delete_undelete_purge(org: Org) -> None:
    low, high = now_stamp_bounds()
    contact = first(org, "Contact")
    done = org.mutate(
        {
            "op": "update",
            "object": "Contact",
            "id": contact["Id"][:15],
            "fields": {"Email": "new@example.com"},
        }
    )
    assert done["id"] == contact["Id"] and low <= done["system_modstamp"] <= high
    assert org.record("Contact", contact["Id"])["Email"] == "new@example.com"

    inserted = org.mutate(
        {
            "op": "insert",
            "object": "Opportunity",
            "fields": {
                "Name": "Big deal",
                "StageName": "Prospecting",
                "CloseDate": "2024-02-30",
                "Amount": "$3.5M",
            },
        }
    )
    new = org.record("Opportunity", inserted["id"])
    assert new["Name"] == "Big deal" and new["Amount"] == "$3.5M"
    assert new["CloseDate"] == "2024-02-30" and new["CreatedDate"] == inserted["system_modstamp"]
    assert inserted["id"].startswith("006") and org.count("Opportunity") == SMALL["Opportunity"] + 1

    deleted = org.mutate({"op": "delete", "object": "Opportunity", "id": inserted["id"]})
    assert org.record("Opportunity", inserted["id"])["IsDeleted"] is True
    assert deleted["system_modstamp"] >= inserted["system_modstamp"]
    org.mutate({"op": "undelete", "object": "Opportunity", "id": inserted["id"]})
    assert org.record("Opportunity", inserted["id"])["IsDeleted"] is False

    org.mutate({"op": "delete", "object": "Opportunity", "id": inserted["id"]})
    org.mutate({"op": "purge", "object": "Opportunity", "id": inserted["id"]})
    assert org.record("Opportunity", inserted["id"]) is None
    assert inserted["id"] not in {r["Id"] for r in org.truth("Opportunity")}
    everything = served(org, "SELECT Id FROM Opportunity", include_deleted=True)
    assert inserted["id"] not in {r["Id"] for r in everything}


def test_late_commit_is_older_than_what_was_already_served(org: Org) -> None:
    fresh = org.mutate({"op": "insert", "object": "Contact", "fields": {"LastName": "Now"}})
    late_new = org.mutate(
        {
            "op": "late_commit",
            "object": "Contact",
            "fields": {"LastName": "Late"},
            "age_seconds": 120,
        }
    )
    assert late_new["created"] is True
    assert late_new["system_modstamp"] < fresh["system_modstamp"]
    contact = first(org, "Contact")
    late_old = org.mutate(
        {
            "op": "late_commit",
            "object": "Contact",
            "id": contact["Id"],
            "fields": {"Title": "CFO"},
            "age_seconds": 600,
        }
    )
    assert late_old["created"] is False
    record = org.record("Contact", contact["Id"])
    assert record["Title"] == "CFO" and record["SystemModstamp"] == late_old["system_modstamp"]
    expected = (datetime.now(UTC) - timedelta(seconds=600)).strftime("%Y-%m-%dT%H:%M")
    assert late_old["system_modstamp"].startswith(expected[:15])


def test_touch_many_shares_one_stamp(org: Org) -> None:
    picked = org.mutate({"op": "touch_many", "object": "Contact", "count": 100})
    assert len(set(picked["ids"])) == 100
    stamps = {org.record("Contact", i)["SystemModstamp"] for i in picked["ids"]}
    assert stamps == {picked["system_modstamp"]}
    chosen = [r["Id"] for r in list(org.truth("Account"))[:5]]
    touched = org.mutate(
        {"op": "touch_many", "object": "Account", "ids": chosen, "fields": {"Region__c": "EMEA"}}
    )
    assert touched["ids"] == chosen
    assert all(org.record("Account", i)["Region__c"] == "EMEA" for i in chosen)


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ({"op": "explode", "object": "Contact"}, "unknown mutation op 'explode'"),
        ({"op": "update", "object": "Case", "id": "x"}, "unknown object 'Case'"),
        ({"op": "update", "object": "Contact", "id": "nope"}, "not a valid Contact Id"),
        ({"op": "insert", "object": "Contact", "fields": {"Bogus": 1}}, "unknown field 'Bogus'"),
        ({"op": "insert", "object": "Contact", "fields": {"Id": "x"}}, "maintained by the org"),
        ({"op": "insert", "object": "Contact", "fields": {"MailingAddress": {}}}, "compound"),
        ({"op": "insert", "object": "Contact", "fields": {"IsDeleted": 1}}, "maintained"),
        ({"op": "touch_many", "object": "Contact"}, "needs 'ids'"),
        ({"op": "late_commit", "object": "Contact", "age_seconds": -1}, "age_seconds"),
        ("update", "JSON object"),
    ],
)
def test_bad_mutations_raise_clear_value_errors(org: Org, op, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        org.mutate(op)


def test_mutating_a_purged_or_unknown_record_is_a_value_error(org: Org) -> None:
    contact = first(org, "Contact")
    org.mutate({"op": "purge", "object": "Contact", "id": contact["Id"]})
    with pytest.raises(ValueError, match="never existed or purged"):
        org.mutate({"op": "update", "object": "Contact", "id": contact["Id"], "fields": {}})


def test_concurrent_queries_and_writes_stay_consistent(org: Org) -> None:
    contacts = [r["Id"] for r in org.truth("Contact")]
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for i in range(offset, len(contacts), 4):
                update(org, rec(contacts[i], Tier__c=f"T{offset}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(20):
                result = org.execute_query("SELECT Id, Tier__c FROM Contact", include_deleted=False)
                assert result.total_size == len(contacts)
                assert len(result.page(0, 5000)) == len(contacts)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    tiers = {r["Id"]: r["Tier__c"] for r in org.truth("Contact")}
    assert all(tiers[c] == f"T{i % 4}" for i, c in enumerate(contacts))


def test_flat_rows_and_columns_for_bulk_results(org: Org) -> None:
    result = org.execute_query(
        "SELECT id, account.name, MailingAddress, mailingcity FROM Contact ORDER BY Id",
        include_deleted=False,
    )
    assert result.sobject == "Contact"
    assert result.columns == ["Id", "Account.Name", "MailingAddress", "MailingCity"]
    assert result.compound_columns == ["MailingAddress"]
    nested = result.page(0, 10)
    flat = result.flat_page(0, 10)
    for record, row in zip(nested, flat, strict=True):
        account_name = record["Account"]["Name"] if record["Account"] else None
        assert row == [record["Id"], account_name, record["MailingAddress"], record["MailingCity"]]
    assert org.count("Contact") == SMALL["Contact"]
    assert result.page(result.total_size, result.total_size + 5) == []
