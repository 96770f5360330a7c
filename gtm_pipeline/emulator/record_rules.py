"""What Salesforce maintains itself, or refuses, when Leads, Tasks and Events are written.

- An activity's AccountId is derived (Task and Event, Object Reference): the What's account when
  the What is an Account (itself) or an Opportunity (its AccountId); otherwise the Who's account
  when the Who is a Contact; otherwise null. It is recomputed whenever WhoId or WhatId is written.
- A Task's IsClosed follows its Status; CompletedDateTime is stamped when the Task is saved with a
  new closed status, and cleared when saved with an open one (Task.CompletedDateTime).
- A converted Lead stays queryable but can no longer be updated through the API: its update fails
  with CANNOT_UPDATE_CONVERTED_LEAD, "cannot reference converted lead".
- Converting a Lead creates a Contact from the Lead's person fields, at an existing Account or at
  one created from the Lead's company fields, and marks the Lead converted.

The Org applies these under its lock; this module only computes values from rows.
"""

from __future__ import annotations

from collections.abc import Mapping

from gtm_pipeline.emulator.ids import KEY_PREFIXES
from gtm_pipeline.emulator.schema import CLOSED_TASK_STATUSES, CONVERTED_LEAD_STATUS, ObjectDef

ACTIVITIES = frozenset({"Task", "Event"})
CONVERTED_LEAD_ERROR = ("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")

# Contact and Account fields filled from a converting Lead's fields (the standard lead field
# mapping, for the fields the emulated objects have).
CONTACT_FROM_LEAD = (
    ("FirstName", "FirstName"),
    ("LastName", "LastName"),
    ("Email", "Email"),
    ("Title", "Title"),
    ("Phone", "Phone"),
    ("LeadSource", "LeadSource"),
    ("MailingStreet", "Street"),
    ("MailingCity", "City"),
    ("MailingState", "State"),
    ("MailingPostalCode", "PostalCode"),
    ("MailingCountry", "Country"),
)
_ACCOUNT_FROM_LEAD = (
    ("Name", "Company"),
    ("Industry", "Industry"),
    ("Phone", "Phone"),
    ("BillingStreet", "Street"),
    ("BillingCity", "City"),
    ("BillingState", "State"),
    ("BillingPostalCode", "PostalCode"),
    ("BillingCountry", "Country"),
)


class RecordRules:
    """The derivations and refusals above, reading related records from the org's tables."""

    def __init__(
        self, objects: Mapping[str, ObjectDef], tables: Mapping[str, Mapping[str, tuple]]
    ) -> None:
        self._objects = objects
        self._tables = tables

    def refusal(self, obj: ObjectDef, row: tuple) -> tuple[str, str] | None:
        """(status code, message) when an API update of this record must fail, else None."""
        if obj.name == "Lead" and row[obj.slots["IsConverted"]]:
            return CONVERTED_LEAD_ERROR
        return None

    def derive(self, obj: ObjectDef, before: tuple | None, values: list, stamp: str) -> None:
        """Recompute the fields Salesforce derives, in `values` (the row being written; `before`
        is the stored row, None for a new record) whose fields they depend on changed."""
        if obj.name not in ACTIVITIES:
            return
        s = obj.slots
        if _changed(before, values, (s["WhoId"], s["WhatId"])):
            values[s["AccountId"]] = self.activity_account(values[s["WhoId"]], values[s["WhatId"]])
        if obj.name == "Task" and _changed(before, values, (s["Status"],)):
            closed = values[s["Status"]] in CLOSED_TASK_STATUSES
            values[s["IsClosed"]] = closed
            values[s["CompletedDateTime"]] = stamp if closed else None

    def activity_account(self, who: str | None, what: str | None) -> str | None:
        """The AccountId Salesforce derives from an activity's What and Who."""
        if what is not None and what.startswith(KEY_PREFIXES["Account"]):
            return what
        if what is not None and what.startswith(KEY_PREFIXES["Opportunity"]):
            return self.account_of("Opportunity", what)
        if who is not None and who.startswith(KEY_PREFIXES["Contact"]):
            return self.account_of("Contact", who)
        return None

    def account_of(self, sobject: str, record_id: str) -> str | None:
        """The AccountId of a Contact or an Opportunity; None when it has none or is purged."""
        row = self._tables[sobject].get(record_id)
        return None if row is None else row[self._objects[sobject].slots["AccountId"]]

    def contact_from_lead(self, lead: tuple, account_id: str) -> dict[int, object]:
        """The field values (by slot) of the Contact a Lead's conversion creates."""
        return self._copied(lead, "Contact", CONTACT_FROM_LEAD) | {
            self._objects["Contact"].slots["AccountId"]: account_id
        }

    def account_from_lead(self, lead: tuple) -> dict[int, object]:
        """The field values (by slot) of the Account a Lead's conversion creates."""
        return self._copied(lead, "Account", _ACCOUNT_FROM_LEAD)

    def conversion(
        self, contact_id: str, account_id: str, opportunity_id: str | None, day: str
    ) -> dict[int, object]:
        """The changes (by slot) that mark a Lead converted on `day`."""
        s = self._objects["Lead"].slots
        return {
            s["IsConverted"]: True,
            s["Status"]: CONVERTED_LEAD_STATUS,
            s["ConvertedDate"]: day,
            s["ConvertedContactId"]: contact_id,
            s["ConvertedAccountId"]: account_id,
            s["ConvertedOpportunityId"]: opportunity_id,
        }

    def _copied(
        self, lead: tuple, target: str, mapping: tuple[tuple[str, str], ...]
    ) -> dict[int, object]:
        lead_slots = self._objects["Lead"].slots
        target_slots = self._objects[target].slots
        return {target_slots[to]: lead[lead_slots[source]] for to, source in mapping}


def _changed(before: tuple | None, values: list, slots: tuple[int, ...]) -> bool:
    return before is None or any(before[slot] != values[slot] for slot in slots)
