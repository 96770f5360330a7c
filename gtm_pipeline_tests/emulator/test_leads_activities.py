"""Leads, Tasks and Events: describe, generation, archived rows, conversion and the control ops.

The generated org's Leads and activities point at its Accounts, Contacts and Opportunities,
which must come out byte-identical whether or not Leads, Tasks and Events are generated. Plain
query (REST and Bulk) hides archived activities, queryAll serves them; converted Leads refuse
API updates.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import UTC, date, datetime

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from gtm_pipeline.emulator.generate import DUPLICATE_ID, format_day, format_stamp
from gtm_pipeline.emulator.generate_activities import ARCHIVE_BEFORE, LEAD_ACTIVITY_DIRTY_KINDS
from gtm_pipeline.emulator.ids import is_valid_id
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.emulator.testing import CAPinnedSession, EmulatorControlError, obtain_tokens
from gtm_pipeline_tests.support.emulator import Api, connect

BASE = {"Account": 40, "Contact": 300, "Opportunity": 60}
NEW = {"Lead": 400, "Task": 1500, "Event": 1500}
SMALL = {"Account": 15, "Contact": 60, "Opportunity": 25, "Lead": 40, "Task": 150, "Event": 60}
ARCHIVE_DAY = format_day(ARCHIVE_BEFORE)
ARCHIVE_STAMP = format_stamp(ARCHIVE_BEFORE)
PLAIN_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@pytest.fixture(scope="module")
def org() -> Org:
    return Org.generate(seed=9, counts={**BASE, **NEW}, dirty_ratio=0.05)


@pytest.fixture()
def clean_org() -> Org:
    """A small org without dirt, for tests that write."""
    return Org.generate(seed=13, counts=SMALL, dirty_ratio=0)


def by_id(org: Org, sobject: str) -> dict[str, dict]:
    return {r["Id"]: r for r in org.truth(sobject)}


def described(org: Org, sobject: str) -> dict[str, dict]:
    return {f["name"]: f for f in org.describe(sobject)["fields"]}


def read_all(api: Api, soql: str, *, all_rows: bool = False) -> list[dict]:
    """Every record of a REST query, page by page."""
    body = api.query(soql, batch_size=200, all_rows=all_rows).json()
    records = list(body["records"])
    while not body["done"]:
        body = api.more(body["nextRecordsUrl"]).json()
        records += body["records"]
    return records


def ids_query(sobject: str, ids: list[str], fields: str = "Id") -> str:
    """SOQL for the records with these Ids (generated ones: nothing to escape)."""
    quoted = ", ".join(f"'{i}'" for i in ids)
    return f"SELECT {fields} FROM {sobject} WHERE Id IN ({quoted})"  # noqa: S608


def salesforce(handle) -> Salesforce:
    session = CAPinnedSession(handle.info["ca_bundle"])
    tokens = obtain_tokens(handle.info, session=session)
    return Salesforce(
        instance_url=tokens["instance_url"], session_id=tokens["access_token"], session=session
    )


def first(org: Org, sobject: str, **match) -> dict:
    return next(r for r in org.truth(sobject) if all(r[k] == v for k, v in match.items()))


# --- describe -------------------------------------------------------------------------------


def test_lead_describe_has_compound_name_address_and_read_only_conversion(org: Org) -> None:
    body = org.describe("Lead")
    assert (body["keyPrefix"], body["mergeable"]) == ("00Q", True)
    fields = described(org, "Lead")
    assert fields["FirstName"]["compoundFieldName"] == "Name"
    assert fields["LastName"]["compoundFieldName"] == "Name" and not fields["LastName"]["nillable"]
    assert fields["Name"]["compoundFieldName"] is None and not fields["Name"]["updateable"]
    assert fields["Company"]["nillable"] is False and fields["Company"]["updateable"]
    assert fields["Address"]["type"] == "address" and not fields["Address"]["updateable"]
    for part in ("Street", "City", "State", "PostalCode", "Country", "Latitude", "Longitude"):
        assert fields[part]["compoundFieldName"] == "Address", part
    assert (fields["Street"]["label"], fields["Address"]["label"]) == ("Street", "Address")
    assert fields["IsConverted"]["type"] == "boolean" and not fields["IsConverted"]["updateable"]
    assert fields["ConvertedDate"]["type"] == "date"
    for name, target in (("ConvertedContactId", "Contact"), ("ConvertedAccountId", "Account"),
                         ("ConvertedOpportunityId", "Opportunity")):  # fmt: skip
        assert fields[name]["referenceTo"] == [target] and not fields[name]["updateable"]
    status = fields["Status"]
    assert [v["value"] for v in status["picklistValues"]] == [
        "Open - Not Contacted", "Working - Contacted", "Closed - Converted",
        "Closed - Not Converted",
    ]  # fmt: skip
    assert [v["value"] for v in status["picklistValues"] if v["defaultValue"]] == [
        "Open - Not Contacted"
    ]
    assert status["defaultedOnCreate"] and not status["nillable"]
    assert fields["Fit_Score__c"]["custom"] and fields["Fit_Score__c"]["updateable"]


@pytest.mark.parametrize(("sobject", "prefix"), [("Task", "00T"), ("Event", "00U")])
def test_activity_describes_have_polymorphic_who_and_what(org: Org, sobject, prefix) -> None:
    body = org.describe(sobject)
    assert (body["keyPrefix"], body["mergeable"]) == (prefix, False)
    fields = described(org, sobject)
    who, what, account = fields["WhoId"], fields["WhatId"], fields["AccountId"]
    assert (who["referenceTo"], who["relationshipName"]) == (["Contact", "Lead"], "Who")
    assert (what["referenceTo"], what["relationshipName"]) == (["Account", "Opportunity"], "What")
    assert who["polymorphicForeignKey"] and what["polymorphicForeignKey"]
    assert who["updateable"] and what["createable"]
    assert account["referenceTo"] == ["Account"] and not account["polymorphicForeignKey"]
    assert not account["updateable"] and not account["createable"]
    archived = fields["IsArchived"]
    assert archived["type"] == "boolean" and not archived["updateable"] and not archived["nillable"]


def test_task_and_event_fields(org: Org) -> None:
    task = described(org, "Task")
    assert task["Subject"]["type"] == "combobox"
    assert [v["value"] for v in task["Status"]["picklistValues"]] == [
        "Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred",
    ]  # fmt: skip
    assert [v["value"] for v in task["Priority"]["picklistValues"]] == ["High", "Normal", "Low"]
    for name in ("IsClosed", "CompletedDateTime"):
        assert not task[name]["updateable"] and not task[name]["createable"], name
    subtype = task["TaskSubtype"]
    assert subtype["createable"] and not subtype["updateable"]
    assert {v["value"] for v in subtype["picklistValues"]} == {
        "Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn",
    }  # fmt: skip
    assert (task["CallDurationInSeconds"]["type"], task["ActivityDate"]["type"]) == ("int", "date")
    assert [v["value"] for v in task["CallType"]["picklistValues"]] == [
        "Internal", "Inbound", "Outbound",
    ]  # fmt: skip
    event = described(org, "Event")
    for name in ("StartDateTime", "EndDateTime", "ActivityDateTime"):
        assert event[name]["type"] == "datetime", name
    assert (event["ActivityDate"]["type"], event["DurationInMinutes"]["type"]) == ("date", "int")
    assert [v["value"] for v in event["Type"]["picklistValues"]] == [
        "Meeting", "Call", "Email", "Other",
    ]  # fmt: skip
    assert not event["EventSubtype"]["updateable"] and event["Location"]["type"] == "string"


def test_other_objects_describe_as_before(org: Org) -> None:
    assert org.describe("Account")["mergeable"] and not org.describe("Opportunity")["mergeable"]
    contact = described(org, "Contact")
    assert not any(f["polymorphicForeignKey"] for f in contact.values())
    assert contact["AccountId"]["referenceTo"] == ["Account"]


def test_selecting_through_a_polymorphic_relationship_is_refused(org: Org) -> None:
    with pytest.raises(Exception, match="polymorphic relationship 'Who'") as caught:
        org.execute_query("SELECT Id, Who.Name FROM Task", include_deleted=False)
    assert caught.value.error_code == "INVALID_FIELD"
    result = org.execute_query("SELECT Id, Account.Name FROM Task LIMIT 5", include_deleted=False)
    assert result.total_size == 5 and "Account" in result.page(0, 1)[0]


# --- generation -----------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "base"), [(42, None), (5, {"Account": 80, "Contact": 600,
                                                               "Opportunity": 150})])  # fmt: skip
def test_new_counts_leave_the_existing_objects_identical(seed, base) -> None:
    without = Org.generate(seed=seed, counts=base)
    with_new = Org.generate(seed=seed, counts={**(base or {}), "Lead": 300, "Task": 900,
                                               "Event": 200})  # fmt: skip
    for name in ("Account", "Contact", "Opportunity"):
        rows = list(without.truth(name))
        assert rows and rows == list(with_new.truth(name)), name  # Ids, values, order, dirt
    assert (without.org_id, without.user_id) == (with_new.org_id, with_new.user_id)
    assert without.count("Lead") == 0 and with_new.count("Lead") == 300
    # The next Ids minted are the same too.
    insert = {"op": "insert", "object": "Contact", "fields": {"LastName": "Next"}}
    assert without.mutate(insert)["id"] == with_new.mutate(insert)["id"]


def test_new_objects_are_deterministic_and_independent_of_each_other(org: Org) -> None:
    again = Org.generate(seed=9, counts={**BASE, **NEW}, dirty_ratio=0.05)
    for name in NEW:
        assert list(again.truth(name)) == list(org.truth(name)), name
    fewer_activities = Org.generate(seed=9, counts={**BASE, "Lead": 400, "Task": 10})
    assert list(fewer_activities.truth("Lead")) == list(org.truth("Lead"))
    other_seed = Org.generate(seed=10, counts={**BASE, **NEW}, dirty_ratio=0.05)
    assert list(other_seed.truth("Task")) != list(org.truth("Task"))


def test_counts_prefixes_and_stamp_ties(org: Org) -> None:
    for name, prefix in (("Lead", "00Q"), ("Task", "00T"), ("Event", "00U")):
        records = list(org.truth(name))
        assert len(records) == NEW[name] == len({r["Id"] for r in records})
        assert all(r["Id"].startswith(prefix) and is_valid_id(r["Id"]) for r in records)
        assert all(r["CreatedDate"] <= r["LastModifiedDate"] <= r["SystemModstamp"]
                   for r in records)  # fmt: skip
        assert max(Counter(r["SystemModstamp"] for r in records).values()) >= 100, name


def test_converted_leads_point_at_their_contact_and_carry_its_email(org: Org) -> None:
    leads = list(org.truth("Lead"))
    contacts, accounts = by_id(org, "Contact"), by_id(org, "Account")
    opportunities = by_id(org, "Opportunity")
    converted = [r for r in leads if r["IsConverted"]]
    assert 0.1 <= len(converted) / len(leads) <= 0.2
    assert not any("_dirty" in r for r in converted)
    for lead in converted:
        contact = contacts[lead["ConvertedContactId"]]
        assert lead["Status"] == "Closed - Converted"
        assert lead["ConvertedAccountId"] == contact["AccountId"]
        assert lead["ConvertedAccountId"] in accounts
        for name in ("Email", "FirstName", "LastName", "Title", "Phone"):
            assert lead[name] == contact[name], name
        assert lead["Company"] == accounts[lead["ConvertedAccountId"]]["Name"]
        assert date.fromisoformat(lead["ConvertedDate"])
        assert lead["CreatedDate"][:10] <= lead["ConvertedDate"] == lead["SystemModstamp"][:10]
        assert contact["CreatedDate"][:10] <= lead["ConvertedDate"]
        if lead["ConvertedOpportunityId"] is not None:
            opportunity = opportunities[lead["ConvertedOpportunityId"]]
            assert opportunity["AccountId"] == lead["ConvertedAccountId"]
    assert any(r["ConvertedOpportunityId"] for r in converted)
    assert any(not r["ConvertedOpportunityId"] for r in converted)
    for lead in leads:
        if not lead["IsConverted"]:
            assert lead["Status"] != "Closed - Converted" and lead["ConvertedDate"] is None
            assert lead["ConvertedContactId"] is None and lead["ConvertedAccountId"] is None


def test_some_leads_share_an_email_with_a_contact_or_another_lead(org: Org) -> None:
    contact_emails = {r["Email"] for r in org.truth("Contact") if r["Email"]}
    folded = {e.casefold() for e in contact_emails}
    open_leads = [r for r in org.truth("Lead") if "_dirty" not in r and not r["IsConverted"]]
    assert all(PLAIN_EMAIL.fullmatch(r["Email"]) for r in open_leads)
    contact_twins = [r for r in open_leads if r["Email"].casefold() in folded]
    assert len(contact_twins) >= 2
    assert any(r["Email"] not in contact_emails for r in contact_twins)  # another case
    assert any(r["Email"] in contact_emails for r in contact_twins)
    lead_emails = Counter(r["Email"].casefold() for r in open_leads)
    assert sum(1 for n in lead_emails.values() if n > 1) >= 3


def test_an_org_without_contacts_converts_no_lead() -> None:
    org = Org.generate(seed=3, counts={"Contact": 0, "Lead": 80})
    assert org.count("Lead") == 80
    assert not any(r["IsConverted"] for r in org.truth("Lead"))


def expected_account(record: dict, contacts: dict, opportunities: dict) -> str | None:
    """The AccountId Salesforce derives: the What's account, else the Who contact's."""
    what, who = record["WhatId"], record["WhoId"]
    if what is not None and what.startswith("001"):
        return what
    if what in opportunities:
        return opportunities[what]["AccountId"]
    return contacts[who]["AccountId"] if who in contacts else None


@pytest.mark.parametrize("sobject", ["Task", "Event"])
def test_activities_link_contacts_leads_accounts_and_opportunities(org: Org, sobject) -> None:
    contacts, leads = by_id(org, "Contact"), by_id(org, "Lead")
    accounts, opportunities = by_id(org, "Account"), by_id(org, "Opportunity")
    records = list(org.truth(sobject))
    for r in records:
        assert r["AccountId"] == expected_account(r, contacts, opportunities), r["Id"]
        if "_dirty" not in r:
            assert r["WhoId"] is None or r["WhoId"] in contacts or r["WhoId"] in leads
            assert r["WhatId"] is None or r["WhatId"] in accounts or r["WhatId"] in opportunities
        if r["WhoId"] in leads:
            assert r["WhatId"] is None  # Salesforce takes no What with a Lead Who
    kinds = Counter(
        (str(r["WhoId"])[:3], str(r["WhatId"])[:3], r["AccountId"] is not None) for r in records
    )
    assert kinds["003", "001", True] and kinds["003", "006", True] and kinds["003", "Non", True]
    assert kinds["00Q", "Non", False] and kinds["Non", "001", True] and kinds["Non", "006", True]
    assert kinds["Non", "Non", False]


def test_tasks_are_open_or_closed_calls_emails_and_to_dos(org: Org) -> None:
    tasks = [r for r in org.truth("Task") if "_dirty" not in r]
    assert {r["TaskSubtype"] for r in tasks} == {
        "Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn",
    }  # fmt: skip
    for r in tasks:
        assert r["IsClosed"] == (r["Status"] == "Completed")
        if r["IsClosed"]:
            assert r["CompletedDateTime"] == r["LastModifiedDate"] and r["ActivityDate"]
            assert r["ActivityDate"] <= r["CompletedDateTime"][:10]
        else:
            assert r["CompletedDateTime"] is None
        calls = r["TaskSubtype"] == "Call"
        assert (r["CallDurationInSeconds"] is not None) == calls
        assert not calls or (r["CallDurationInSeconds"] > 0 and r["CallType"] in
                             ("Internal", "Inbound", "Outbound"))  # fmt: skip
    open_without_dates = [r for r in tasks if not r["IsClosed"] and r["ActivityDate"] is None]
    assert len(open_without_dates) >= 20
    assert {r["Status"] for r in tasks if not r["IsClosed"]} == {
        "Not Started", "In Progress", "Waiting on someone else", "Deferred",
    }  # fmt: skip


def test_events_are_mostly_meetings_with_consistent_times(org: Org) -> None:
    events = [r for r in org.truth("Event") if "_dirty" not in r]
    types = Counter(r["Type"] for r in events)
    assert types.most_common(1)[0][0] == "Meeting" and len(types) == 4
    for r in events:
        start = datetime.strptime(r["StartDateTime"], "%Y-%m-%dT%H:%M:%S.000+0000")
        end = datetime.strptime(r["EndDateTime"], "%Y-%m-%dT%H:%M:%S.000+0000")
        assert (end - start).total_seconds() == r["DurationInMinutes"] * 60 > 0
        assert r["ActivityDateTime"] == r["StartDateTime"]
        assert r["ActivityDate"] == r["StartDateTime"][:10]
        assert r["EventSubtype"] == "Event"


@pytest.mark.parametrize("sobject", ["Task", "Event"])
def test_activities_older_than_a_year_are_archived(org: Org, sobject) -> None:
    records = list(org.truth(sobject))
    for r in records:
        if sobject == "Task":
            due = r["ActivityDate"]
            expected = bool(r["IsClosed"] and due is not None and due < ARCHIVE_DAY)
        else:
            expected = r["EndDateTime"] is not None and r["EndDateTime"] < ARCHIVE_STAMP
        assert r["IsArchived"] == expected, r["Id"]
    share = sum(r["IsArchived"] for r in records) / len(records)
    assert 0.25 <= share <= 0.9, share


@pytest.mark.parametrize("sobject", ["Lead", "Task", "Event"])
def test_every_dirty_kind_present_at_the_ratio(org: Org, sobject) -> None:
    records = list(org.truth(sobject))
    kinds = Counter(r["_dirty"] for r in records if "_dirty" in r)
    assert set(kinds) == set(LEAD_ACTIVITY_DIRTY_KINDS[sobject]) | {DUPLICATE_ID}
    assert 0.04 <= sum(kinds.values()) / len(records) <= 0.06


def dirty(org: Org, sobject: str, kind: str) -> list[dict]:
    found = [r for r in org.truth(sobject) if r.get("_dirty") == kind]
    assert found, (sobject, kind)
    return found


def test_dirty_leads_carry_their_dirt(org: Org) -> None:
    for r in dirty(org, "Lead", "missing_required"):
        assert r["LastName"] is None and r["Email"] is None
    for r in dirty(org, "Lead", "malformed_email"):
        assert not PLAIN_EMAIL.fullmatch(r["Email"]), r["Email"]
    for r in dirty(org, "Lead", "padded_string"):
        assert any(isinstance(v, str) and v != v.strip() for v in r.values())
    for r in dirty(org, "Lead", "long_string"):
        assert len(r["Title"]) > 128
    for r in dirty(org, "Lead", "non_latin"):
        assert not r["LastName"].isascii() and not r["Company"].isascii()


@pytest.mark.parametrize("sobject", ["Task", "Event"])
def test_dirty_activities_carry_their_dirt(org: Org, sobject) -> None:
    people = set(by_id(org, "Contact")) | set(by_id(org, "Lead"))
    duration = "CallDurationInSeconds" if sobject == "Task" else "DurationInMinutes"
    dates = ("ActivityDate", "CompletedDateTime") if sobject == "Task" else (
        "StartDateTime", "EndDateTime", "ActivityDateTime", "ActivityDate")  # fmt: skip
    for r in dirty(org, sobject, "missing_dates"):
        assert all(r[name] is None for name in dates)
    for r in dirty(org, sobject, "negative_duration"):
        assert r[duration] < 0
    for r in dirty(org, sobject, "absurd_duration"):
        assert r[duration] > (2 * 86_400 if sobject == "Task" else 10_000)
    for r in dirty(org, sobject, "dangling_who"):
        assert is_valid_id(r["WhoId"]) and r["WhoId"][:3] in ("003", "00Q")
        assert r["WhoId"] not in people and r["AccountId"] is None
    for r in dirty(org, sobject, "padded_string"):
        assert r["Subject"] != r["Subject"].strip()


# --- serving --------------------------------------------------------------------------------


@pytest.mark.parametrize("sobject", ["Task", "Event"])
def test_rest_query_hides_archived_activities_and_query_all_serves_them(
    start_emulator, org: Org, sobject
) -> None:
    api = connect(start_emulator(org=org))
    truth = by_id(org, sobject)
    archived = {i for i, r in truth.items() if r["IsArchived"]}
    soql = f"SELECT Id, IsArchived FROM {sobject}"  # noqa: S608
    live = read_all(api, soql)
    everything = read_all(api, soql, all_rows=True)
    assert archived and {r["Id"] for r in live} == set(truth) - archived
    assert not any(r["IsArchived"] for r in live)
    assert {r["Id"] for r in everything} == set(truth)
    assert {r["Id"] for r in everything if r["IsArchived"]} == archived
    assert org.count(sobject) == len(truth) - len(archived)
    assert org.count(sobject, include_deleted=True) == len(truth)


def test_incremental_and_id_queries_on_tasks(start_emulator, org: Org) -> None:
    api = connect(start_emulator(org=org))
    live = [r for r in org.truth("Task") if not r["IsArchived"]]
    mark = sorted(r["SystemModstamp"] for r in live)[len(live) // 2]
    where = f"WHERE SystemModstamp > {mark[:19]}Z ORDER BY SystemModstamp, Id"
    soql = "SELECT Id, SystemModstamp FROM Task " + where  # noqa: S608
    served = read_all(api, soql)
    keys = list(dict.fromkeys((r["SystemModstamp"], r["Id"]) for r in served))
    assert keys == sorted(keys)  # duplicates are served again later; first sightings in order
    assert {i for _, i in keys} == {r["Id"] for r in live if r["SystemModstamp"] > mark}
    archived = next(r["Id"] for r in org.truth("Task") if r["IsArchived"])
    wanted = [r["Id"] for r in live[:5]] + [archived]
    in_list = ids_query("Task", wanted)
    assert {r["Id"] for r in read_all(api, in_list)} == set(wanted[:5])
    assert {r["Id"] for r in read_all(api, in_list, all_rows=True)} == set(wanted)
    limited = api.query("SELECT Id FROM Event ORDER BY Id LIMIT 7").json()
    assert (limited["totalSize"], len(limited["records"])) == (7, 7)


def test_bulk_query_hides_archived_and_query_all_serves_them(start_emulator, org: Org) -> None:
    sf = salesforce(start_emulator(org=org))
    truth = by_id(org, "Event")
    archived = {i for i, r in truth.items() if r["IsArchived"]}

    def ids(chunks) -> set[str]:
        return {row["Id"] for chunk in chunks for row in csv.DictReader(io.StringIO(chunk))}

    soql = "SELECT Id, IsArchived, WhoId FROM Event"
    assert ids(sf.bulk2.Event.query(soql, max_records=250, wait=0)) == set(truth) - archived
    assert ids(sf.bulk2.Event.query_all(soql, max_records=250, wait=0)) == set(truth)


def test_simple_salesforce_reads_leads_and_activities(start_emulator, org: Org) -> None:
    sf = salesforce(start_emulator(org=org))
    assert sf.Lead.describe()["keyPrefix"] == "00Q"
    who = next(f for f in sf.Task.describe()["fields"] if f["name"] == "WhoId")
    assert who["polymorphicForeignKey"] and who["referenceTo"] == ["Contact", "Lead"]
    leads = list(sf.query_all_iter("SELECT Id, Name, Email, Address, IsConverted FROM Lead"))
    assert {r["Id"] for r in leads} == set(by_id(org, "Lead"))
    converted = next(r for r in leads if r["IsConverted"])
    assert converted["Address"]["city"] and converted["attributes"]["type"] == "Lead"
    tasks = list(sf.query_all_iter("SELECT Id FROM Task"))
    every_task = list(sf.query_all_iter("SELECT Id FROM Task", include_deleted=True))
    assert len(tasks) == org.execute_query("SELECT Id FROM Task", include_deleted=False).total_size
    assert len(every_task) > len(tasks)


# --- writes ---------------------------------------------------------------------------------


def lead_update(lead_id: str, **fields) -> dict:
    return {"attributes": {"type": "Lead"}, "id": lead_id, **fields}


def test_converted_leads_refuse_api_updates(start_emulator, clean_org: Org) -> None:
    handle = start_emulator(org=clean_org)
    api = connect(handle)
    converted = first(clean_org, "Lead", IsConverted=True)
    open_lead = first(clean_org, "Lead", IsConverted=False)
    body = {"allOrNone": False, "records": [lead_update(converted["Id"], Title="CTO"),
                                            lead_update(open_lead["Id"], Title="CTO")]}  # fmt: skip
    results = api.patch("/composite/sobjects", body).json()
    assert results[0] == {
        "success": False,
        "errors": [{"statusCode": "CANNOT_UPDATE_CONVERTED_LEAD",
                    "message": "cannot reference converted lead", "fields": []}],
    }  # fmt: skip
    assert results[1] == {"id": open_lead["Id"], "success": True, "errors": []}
    assert clean_org.record("Lead", converted["Id"]) == converted
    single = api.patch(f"/sobjects/Lead/{converted['Id']}", {"Title": "CEO"})
    assert single.status_code == 400
    assert single.json()[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert single.json()[0]["message"] == "cannot reference converted lead"
    sf = salesforce(handle)
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Lead.update(converted["Id"], {"Title": "COO"})
    assert refused.value.content[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert sf.Lead.update(open_lead["Id"], {"Title": "COO"}) == 204
    assert clean_org.record("Lead", open_lead["Id"])["Title"] == "COO"


def test_single_record_patch_errors(start_emulator, clean_org: Org) -> None:
    api = connect(start_emulator(org=clean_org))
    missing = api.patch("/sobjects/Lead/00QRO0000000001AAA", {"Title": "x"})
    assert missing.status_code == 404 and missing.json()[0]["errorCode"] == "NOT_FOUND"
    task = first(clean_org, "Task", IsArchived=False)
    bad = api.patch(f"/sobjects/Task/{task['Id']}", {"Bogus__c": 1})
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_FIELD"
    assert bad.json()[0]["fields"] == ["Bogus__c"]
    assert api.patch(f"/sobjects/Task/{task['Id']}", ["nope"]).status_code == 400


@pytest.mark.parametrize(
    ("sobject", "field", "value"),
    [("Task", "IsArchived", True), ("Task", "IsClosed", True), ("Event", "AccountId", None),
     ("Lead", "IsConverted", True), ("Task", "CompletedDateTime", "2024-01-01T00:00:00Z")],
)  # fmt: skip
def test_maintained_fields_are_not_writable(clean_org: Org, sobject, field, value) -> None:
    record = first(clean_org, sobject)
    update = {"attributes": {"type": sobject}, "id": record["Id"], field: value}
    [result] = clean_org.update_collection([update], all_or_none=False)
    assert result["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert result["errors"][0]["fields"] == [field]


def test_api_writes_rederive_is_closed_completion_and_account(clean_org: Org) -> None:
    task = first(clean_org, "Task", IsClosed=False, IsArchived=False)
    opportunity = next(r for r in clean_org.truth("Opportunity") if r["AccountId"])
    update = {"attributes": {"type": "Task"}, "id": task["Id"], "Status": "Completed",
              "WhatId": opportunity["Id"]}  # fmt: skip
    [result] = clean_org.update_collection([update], all_or_none=False)
    assert result["success"], result
    after = clean_org.record("Task", task["Id"])
    assert after["IsClosed"] and after["CompletedDateTime"] == after["SystemModstamp"]
    assert after["AccountId"] == opportunity["AccountId"]
    reopen = {"attributes": {"type": "Task"}, "id": task["Id"], "Status": "In Progress"}
    clean_org.update_collection([reopen], all_or_none=False)
    reopened = clean_org.record("Task", task["Id"])
    assert not reopened["IsClosed"] and reopened["CompletedDateTime"] is None


# --- control API --------------------------------------------------------------------------


def today_range() -> set[str]:
    return {datetime.now(UTC).date().isoformat()}


def test_convert_makes_a_contact_and_account_and_moves_the_stamps(
    start_emulator, clean_org: Org
) -> None:
    handle = start_emulator(org=clean_org)
    lead = first(clean_org, "Lead", IsConverted=False)
    before_day = today_range()
    [result] = handle.control.mutate({"op": "convert", "object": "Lead", "id": lead["Id"]})
    converted = clean_org.record("Lead", lead["Id"])
    contact = clean_org.record("Contact", result["contact_id"])
    account = clean_org.record("Account", result["account_id"])
    assert converted["IsConverted"] and converted["Status"] == "Closed - Converted"
    assert converted["ConvertedDate"] in before_day | today_range()
    assert converted["ConvertedContactId"] == contact["Id"]
    assert converted["ConvertedAccountId"] == account["Id"] == contact["AccountId"]
    assert converted["ConvertedOpportunityId"] is None
    assert converted["SystemModstamp"] == converted["LastModifiedDate"] == result["system_modstamp"]
    assert converted["SystemModstamp"] > lead["SystemModstamp"]
    for name in ("FirstName", "LastName", "Email", "Title", "Phone"):
        assert contact[name] == lead[name], name
    assert contact["MailingCity"] == lead["City"] and account["Name"] == lead["Company"]
    assert converted["Email"] == contact["Email"]
    refused = connect(handle).patch(f"/sobjects/Lead/{lead['Id']}", {"Title": "x"})
    assert refused.json()[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_convert_into_an_existing_account_and_opportunity(clean_org: Org) -> None:
    lead = first(clean_org, "Lead", IsConverted=False)
    opportunity = next(r for r in clean_org.truth("Opportunity") if r["AccountId"])
    accounts = clean_org.count("Account")
    result = clean_org.mutate({"op": "convert", "object": "Lead", "id": lead["Id"],
                               "account_id": opportunity["AccountId"],
                               "opportunity_id": opportunity["Id"]})  # fmt: skip
    converted = clean_org.record("Lead", lead["Id"])
    assert converted["ConvertedAccountId"] == opportunity["AccountId"] == result["account_id"]
    assert converted["ConvertedOpportunityId"] == opportunity["Id"]
    assert clean_org.count("Account") == accounts  # no new Account


def test_bad_conversions_change_nothing(start_emulator, clean_org: Org) -> None:
    handle = start_emulator(org=clean_org)
    converted = first(clean_org, "Lead", IsConverted=True)
    lead = first(clean_org, "Lead", IsConverted=False)
    mismatched = next(r for r in clean_org.truth("Opportunity") if r["AccountId"])
    other_account = next(i for i in by_id(clean_org, "Account") if i != mismatched["AccountId"])
    contacts = clean_org.count("Contact")
    bad_ops = [
        ({"op": "convert", "object": "Lead", "id": converted["Id"]}, "already converted"),
        ({"op": "convert", "object": "Contact", "id": first(clean_org, "Contact")["Id"]},
         "only Leads"),
        ({"op": "convert", "object": "Lead", "id": lead["Id"], "account_id": other_account,
          "opportunity_id": mismatched["Id"]}, "must belong to the converted Account"),
    ]  # fmt: skip
    for op, message in bad_ops:
        with pytest.raises(EmulatorControlError, match=message):
            handle.control.mutate(op)
    assert clean_org.count("Contact") == contacts
    assert clean_org.record("Lead", lead["Id"]) == lead


@pytest.mark.parametrize("sobject", ["Task", "Event"])
def test_archive_hides_an_activity_from_query_and_keeps_its_stamps(
    start_emulator, clean_org: Org, sobject
) -> None:
    handle = start_emulator(org=clean_org)
    api = connect(handle)
    record = first(clean_org, sobject, IsArchived=False)
    [result] = handle.control.mutate({"op": "archive", "object": sobject, "id": record["Id"]})
    after = clean_org.record(sobject, record["Id"])
    assert after == {**record, "IsArchived": True}  # stamps and everything else unchanged
    assert result["system_modstamp"] == record["SystemModstamp"]
    soql = ids_query(sobject, [record["Id"]])
    assert api.query(soql).json()["totalSize"] == 0
    assert api.query(soql, all_rows=True).json()["totalSize"] == 1
    with pytest.raises(EmulatorControlError, match="already archived"):
        handle.control.mutate({"op": "archive", "object": sobject, "id": record["Id"]})
    with pytest.raises(EmulatorControlError, match="only activities"):
        handle.control.mutate({"op": "archive", "object": "Lead",
                               "id": first(clean_org, "Lead")["Id"]})  # fmt: skip


def test_insert_update_delete_undelete_purge_activities_and_leads(
    start_emulator, clean_org: Org
) -> None:
    handle = start_emulator(org=clean_org)
    control = handle.control
    contact = next(r for r in clean_org.truth("Contact") if r["AccountId"])
    [task] = control.mutate({"op": "insert", "object": "Task",
                             "fields": {"WhoId": contact["Id"], "Subject": "Call"}})  # fmt: skip
    inserted = clean_org.record("Task", task["id"])
    assert inserted["Id"].startswith("00T") and inserted["AccountId"] == contact["AccountId"]
    assert (inserted["Status"], inserted["Priority"]) == ("Not Started", "Normal")
    assert inserted["IsClosed"] is False and inserted["IsArchived"] is False
    control.mutate({"op": "update", "object": "Task", "id": task["id"],
                    "fields": {"Status": "Completed"}})  # fmt: skip
    closed = clean_org.record("Task", task["id"])
    assert closed["IsClosed"] and closed["CompletedDateTime"] == closed["SystemModstamp"]
    [lead] = control.mutate({"op": "insert", "object": "Lead",
                             "fields": {"LastName": "Okafor", "Company": "Acme"}})  # fmt: skip
    new_lead = clean_org.record("Lead", lead["id"])
    assert (new_lead["Status"], new_lead["IsConverted"]) == ("Open - Not Contacted", False)
    assert new_lead["Name"] == "Okafor"
    [event] = control.mutate({"op": "insert", "object": "Event", "fields": {"Subject": "Demo"}})
    for op in ("delete", "undelete", "delete"):
        control.mutate({"op": op, "object": "Event", "id": event["id"]})
    soql = ids_query("Event", [event["id"]], "Id, IsDeleted")
    api = connect(handle)
    assert api.query(soql).json()["totalSize"] == 0
    assert api.query(soql, all_rows=True).json()["records"][0]["IsDeleted"] is True
    truth = {r["Id"]: r for r in control.truth("Event")}
    assert truth[event["id"]]["IsDeleted"] is True
    control.mutate({"op": "purge", "object": "Event", "id": event["id"]})
    assert event["id"] not in {r["Id"] for r in control.truth("Event")}


def test_truth_lists_archived_and_dirty_activities(start_emulator, org: Org) -> None:
    handle = start_emulator(org=org)
    rows = list(handle.control.truth("Task"))
    assert len(rows) == NEW["Task"]
    assert any(r["IsArchived"] for r in rows) and any("_dirty" in r for r in rows)
    assert {r["Id"] for r in handle.control.truth("Lead")} == set(by_id(org, "Lead"))
