"""The test oracle: the store one entity must hold, computed from the emulator's truth alone.

Nothing here calls the code under test. The default mapping (Salesforce field -> canonical
column) and the documented gate rules are written out again below, independently of
`sync/entities.py`, `sync/coerce.py` and `sync/quality.py`, so that a change to either side shows
up as a difference instead of being copied into the expectation.

From `emulator.control.truth(object)` (every record not purged, with `IsDeleted`; NUL characters
removed from text, as a sync is served it: `served`):

- a live record that keeps the raw contract and passes the gates -> a row holding the newest
  value of every canonical column, not deleted, no quarantine entry;
- a live record that fails -> no row, exactly one quarantine entry (the expected stage, a failing
  field, the version's stamp and its newest values);
- persons (Contacts) and leads share email twins: among the expected live rows of both objects
  that share an email, converted Leads left out, a Contact survives before a Lead and then the
  smallest Id (Python `min()`); every other row of the group has `duplicate_of` = that Id, every
  other row has none. So the truth of both objects is read for either;
- a record in the recycle bin -> a row flagged deleted (`deleted_reason` "deleted") with
  `deleted_at` == `system_modstamp` == the record's stamp (other values not compared) and no
  quarantine entry;
- a stored row of a record absent from the truth (purged) -> flagged deleted ("deleted" or
  "purged"), no quarantine entry.

Every canonical column is compared except `synced_at`. Every difference is collected, so one
failure lists them all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from gtm_pipeline.emulator.testing import EmulatorHandle
from gtm_pipeline.store.tables import entity_rows, quality_failures
from gtm_pipeline.sync.entities import Entity

RAW_SCHEMA, REQUIRED, TYPES = "raw_schema", "required_fields", "type_coercion"
MAX_TEXT = 255
MAX_INTEGER = 2**31 - 1
SHOWN = 25
"""Differences listed in a failure message (all are counted)."""


# -- the reference default mapping -------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One canonical column: the Salesforce field it is read from (the first of several that
    holds a value) and what kind of value."""

    field: str | tuple[str, ...]
    kind: str  # a key of READ


_PERSON = {
    "email": Source("Email", "email"),
    "first_name": Source("FirstName", "text"),
    "last_name": Source("LastName", "text"),
    "title": Source("Title", "text"),
    "phone": Source("Phone", "text"),
}
LEAD_ONLY = (
    "company",
    "lead_status",
    "lead_source",
    "is_converted",
    "converted_contact_external_id",
    "converted_account_external_id",
)
"""The persons columns a Contact's row leaves empty."""


def _activity(**columns: Source) -> dict[str, Source]:
    """An activity's columns: what Tasks and Events share, then `columns`."""
    return {
        "subject": Source("Subject", "text"),
        "who_external_id": Source("WhoId", "text"),
        "who_object": Source("WhoId", "object"),
        "what_external_id": Source("WhatId", "text"),
        "what_object": Source("WhatId", "object"),
        "account_external_id": Source("AccountId", "text"),
        "is_archived": Source("IsArchived", "boolean"),
        **columns,
    }


MAPPING: dict[str, dict[str, Source]] = {
    "accounts": {
        "name": Source("Name", "text"),
        "website": Source("Website", "text"),
        "domain": Source("Website", "domain"),
        "industry": Source("Industry", "text"),
        "employee_count": Source("NumberOfEmployees", "integer"),
        "annual_revenue": Source("AnnualRevenue", "number"),
    },
    "persons": {**_PERSON, "account_external_id": Source("AccountId", "text")},
    "leads": {
        **_PERSON,
        "company": Source("Company", "text"),
        "lead_status": Source("Status", "text"),
        "lead_source": Source("LeadSource", "text"),
        "is_converted": Source("IsConverted", "boolean"),
        "converted_contact_external_id": Source("ConvertedContactId", "text"),
        "converted_account_external_id": Source("ConvertedAccountId", "text"),
    },
    "opportunities": {
        "name": Source("Name", "text"),
        "stage": Source("StageName", "text"),
        "close_date": Source("CloseDate", "date"),
        "account_external_id": Source("AccountId", "text"),
        "amount": Source("Amount", "number"),
    },
    "tasks": _activity(
        subtype=Source("TaskSubtype", "lower"),
        status=Source("Status", "text"),
        occurred_at=Source(("CompletedDateTime", "ActivityDate", "CreatedDate"), "datetime"),
        duration_seconds=Source("CallDurationInSeconds", "integer"),
        is_closed=Source("IsClosed", "boolean"),
    ),
    "events": _activity(
        subtype=Source("Type", "event_subtype"),
        status=Source((), "none"),
        occurred_at=Source(("StartDateTime", "ActivityDateTime"), "datetime"),
        duration_seconds=Source("DurationInMinutes", "minutes"),
        is_closed=Source((), "none"),
    ),
}
OBJECT = {
    "accounts": "Account",
    "persons": "Contact",
    "leads": "Lead",
    "opportunities": "Opportunity",
    "tasks": "Task",
    "events": "Event",
}
_ACTIVITY_GROUPS = tuple(
    ("occurred_at", about)
    for about in ("who_external_id", "what_external_id", "account_external_id")
)
ACTIVITY_KIND = {"tasks": "task", "events": "event"}
"""The `kind` of each activity entity's rows in the shared `activities` table."""
REQUIRED_GROUPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "accounts": (("name",),),
    "persons": (("email",), ("first_name", "last_name")),
    "leads": (("email",), ("first_name", "last_name")),
    "opportunities": (("name", "account_external_id"),),
    "tasks": _ACTIVITY_GROUPS,
    "events": _ACTIVITY_GROUPS,
}
"""A record passes when every column of one group is set (external_id always is)."""
TEXT_KINDS = ("text", "email", "domain", "lower", "object", "event_subtype", "none")
PRESENCE_KINDS = ("datetime",)
"""Typed kinds a required group names: present when the field holds anything, read later."""
KEY_PREFIXES = {"001": "Account", "003": "Contact", "006": "Opportunity", "00Q": "Lead"}
"""Salesforce's documented key prefixes of the objects an activity points at in the emulator."""


# -- one small function per rule ---------------------------------------------------------------


class Unreadable(ValueError):
    """A value the type gate must reject."""


SALESFORCE_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
SALESFORCE_STAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})"
)


def stamp_of(record: Mapping[str, Any]) -> datetime:
    """A record's SystemModstamp as an aware datetime."""
    return datetime.strptime(record["SystemModstamp"], "%Y-%m-%dT%H:%M:%S.%f%z")


def breaks_raw_contract(record: Mapping[str, Any]) -> str | None:
    """The field that breaks Salesforce's side of the contract (Id, stamp, reference ids)."""
    if not isinstance(record.get("Id"), str) or not SALESFORCE_ID.fullmatch(record["Id"]):
        return "Id"
    stamp = record.get("SystemModstamp")
    if not isinstance(stamp, str) or not SALESFORCE_STAMP.fullmatch(stamp):
        return "SystemModstamp"
    for reference in ("AccountId", "WhoId", "WhatId", "ConvertedContactId", "ConvertedAccountId"):
        value = record.get(reference)
        if value is not None and not SALESFORCE_ID.fullmatch(str(value)):
            return reference
    return None


def text(value: Any) -> str | None:
    """Trimmed; blanks are missing."""
    if value is None:
        return None
    trimmed = str(value).strip()
    return trimmed or None


def lower(value: Any) -> str | None:
    """Trimmed and lowercased (a picklist value as a column's vocabulary)."""
    trimmed = text(value)
    return None if trimmed is None else trimmed.lower()


def object_of(value: Any) -> str | None:
    """The object a polymorphic Id points at, from its first three characters."""
    trimmed = text(value)
    return None if trimmed is None else KEY_PREFIXES.get(trimmed[:3])


def event_subtype(value: Any) -> str:
    """An Event's Type, lowercased; an Event without one is a meeting."""
    return lower(value) or "meeting"


def nothing(_value: Any) -> None:
    return None


_ISO_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)(Z|[+-]\d{2}:?\d{2})", re.ASCII
)


def iso_datetime(value: Any) -> datetime | None:
    """A Salesforce dateTime (`2024-01-01T10:00:00.000+0000`, any offset) or date (midnight UTC)
    as an aware UTC datetime."""
    if value is None:
        return None
    cleaned = str(value).strip()
    if match := _ISO_DATETIME.fullmatch(cleaned):
        day, clock, offset = match.groups()
        offset = "+0000" if offset == "Z" else offset.replace(":", "")
        if "." not in clock:
            clock += ".0"
        parsed = datetime.strptime(f"{day}T{clock}{offset}", "%Y-%m-%dT%H:%M:%S.%f%z")
        return parsed.astimezone(UTC)
    day = iso_date(value)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def boolean(value: Any) -> bool | None:
    """A JSON boolean."""
    if value is None or isinstance(value, bool):
        return value
    raise Unreadable(value)


def minutes(value: Any) -> int | None:
    """A number of minutes as whole seconds."""
    parsed = number(value)
    return None if parsed is None else integer(parsed * 60)


def email(value: Any) -> str | None:
    """Trimmed and lowercased."""
    trimmed = text(value)
    return None if trimmed is None else trimmed.lower()


_LABEL = re.compile(r"[^\W_](?:[\w-]*[^\W_])?")


def domain(value: Any) -> str | None:
    """The host of a website, lowercased, without scheme, user, `www.`, port or path; missing
    unless it is dot-separated labels ending in a label that starts with a letter."""
    site = text(value)
    if site is None:
        return None
    rest = re.sub(r"^[a-z][a-z0-9+.\-]*:", "", site.lower()).removeprefix("//")
    host = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host = host.rsplit("@", 1)[-1].removeprefix("www.")
    host = re.sub(r"\.?(?::\d+)?$", "", host)
    labels = host.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    return host if labels[-1][0].isalpha() else None


_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SUFFIXED = re.compile(r"(-?\d+(?:\.\d+)?)\s*([kmb])")
_SCALE = {"k": 1e3, "m": 1e6, "b": 1e9}


def number(value: Any) -> float | None:
    """coerce.py's rule: JSON numbers; text with a currency sign, thousands commas or a k/m/b
    suffix; anything ambiguous ("1.200,50", "N/A", "-") or not finite is unreadable."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise Unreadable(value)
    if isinstance(value, int | float):
        parsed = float(value)
    else:
        cleaned = re.sub(r"^[$€£]\s*", "", str(value).strip().lower())
        if _THOUSANDS.fullmatch(cleaned):
            cleaned = cleaned.replace(",", "")
        if _PLAIN_NUMBER.fullmatch(cleaned):
            parsed = float(cleaned)
        elif match := _SUFFIXED.fullmatch(cleaned):
            parsed = float(match[1]) * _SCALE[match[2]]
        else:
            raise Unreadable(value)
    if not math.isfinite(parsed):
        raise Unreadable(value)
    return parsed


def integer(value: Any) -> int | None:
    """A number that is whole and fits 32 bits."""
    parsed = number(value)
    if parsed is None:
        return None
    if parsed != round(parsed) or abs(parsed) > MAX_INTEGER:
        raise Unreadable(value)
    return int(parsed)


def iso_date(value: Any) -> date | None:
    """`YYYY-MM-DD` (trimmed) naming a real day."""
    if value is None:
        return None
    cleaned = str(value).strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", cleaned, flags=re.ASCII):
        raise Unreadable(value)
    try:
        return datetime.strptime(cleaned, "%Y-%m-%d").date()
    except ValueError:
        raise Unreadable(value) from None


READ: dict[str, Callable[[Any], Any]] = {
    "text": text,
    "email": email,
    "domain": domain,
    "lower": lower,
    "object": object_of,
    "event_subtype": event_subtype,
    "none": nothing,
    "integer": integer,
    "number": number,
    "date": iso_date,
    "datetime": iso_datetime,
    "boolean": boolean,
    "minutes": minutes,
}


def served(truth: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Records as a sync reads them: without NUL characters in their text (README, Sync)."""
    return [
        {k: v.replace(chr(0), "") if isinstance(v, str) else v for k, v in record.items()}
        for record in truth
    ]


def value_of(record: Mapping[str, Any], source: Source) -> Any:
    """The source field's value, or the first of its fields that is not blank."""
    if isinstance(source.field, str):
        return record.get(source.field)
    for field in source.field:
        if text(record.get(field)) is not None:
            return record[field]
    return None


def too_long(value: Any) -> bool:
    return isinstance(value, str) and len(value) > MAX_TEXT


def missing_required(entity: str, values: Mapping[str, Any]) -> str | None:
    """The first required column missing when no group of required columns is complete."""
    groups = REQUIRED_GROUPS[entity]
    if any(all(values[c] is not None for c in group) for group in groups):
        return None
    ordered = dict.fromkeys(c for group in groups for c in group)
    return next(c for c in ordered if values[c] is None)


# -- what one record must become ---------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """The quarantine entry a record must have: its stage and the fields that may be named."""

    stage: str
    fields: frozenset[str]


def text_values(entity: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The text columns as the gates see them (also what a quarantine entry holds)."""
    return {
        column: READ[source.kind](value_of(record, source))
        for column, source in MAPPING[entity].items()
        if source.kind in TEXT_KINDS
    }


def presence_values(entity: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The text columns, and the typed columns a required group names as they come (read later)."""
    return text_values(entity, record) | {
        column: text(value_of(record, source))
        for column, source in MAPPING[entity].items()
        if source.kind in PRESENCE_KINDS
    }


def judged(entity: str, record: Mapping[str, Any]) -> dict[str, Any] | Failure:
    """The record's expected row values (every mapped column), or the failure it must have."""
    broken = breaks_raw_contract(record)
    if broken is not None:
        return Failure(RAW_SCHEMA, frozenset({broken}))
    missing = missing_required(entity, presence_values(entity, record))
    if missing is not None:
        return Failure(REQUIRED, frozenset({missing}))
    values = text_values(entity, record)
    failing = {column for column, value in values.items() if too_long(value)}
    for column, source in MAPPING[entity].items():
        if source.kind not in TEXT_KINDS:
            try:
                values[column] = READ[source.kind](value_of(record, source))
            except Unreadable:
                failing.add(column)
    if failing:
        return Failure(TYPES, frozenset(failing))
    return values


def live_row(entity: str, record: Mapping[str, Any], values: Mapping[str, Any]) -> dict:
    """Every canonical column of a stored live record (`duplicate_of` filled in later)."""
    row = {
        "external_id": record["Id"],
        **values,
        "system_modstamp": stamp_of(record),
        "is_deleted": False,
        "deleted_at": None,
        "deleted_reason": None,
        "custom_fields": None,
    }
    if entity == "persons":
        row |= dict.fromkeys(LEAD_ONLY) | {"source_object": "Contact", "duplicate_of": None}
    if entity == "leads":
        row |= {"account_external_id": None, "source_object": "Lead", "duplicate_of": None}
    if entity in ACTIVITY_KIND:
        row["kind"] = ACTIVITY_KIND[entity]
    return row


PERSON_ENTITIES = ("persons", "leads")
"""The entities whose rows are email twins of each other."""


def mark_twins(rows: dict[str, dict]) -> None:
    """duplicate_of on the live rows of Contacts and Leads together, converted Leads left out:
    a Contact survives before a Lead, then the smallest Id; all but the survivor point at it."""
    by_email: dict[str, list[str]] = {}
    for external_id, row in rows.items():
        if row["email"] is not None and not row.get("is_converted"):
            by_email.setdefault(row["email"], []).append(external_id)
    for ids in by_email.values():
        contacts = [i for i in ids if rows[i]["source_object"] == "Contact"]
        survivor = min(contacts or ids)
        for external_id in ids:
            rows[external_id]["duplicate_of"] = None if external_id == survivor else survivor


@dataclass
class Expected:
    """The store one entity of one tenant must hold."""

    live: dict[str, dict]
    """external_id -> every canonical column."""
    quarantined: dict[str, tuple[Failure, Mapping[str, Any]]]
    """external_id -> the failure and the record."""
    deleted: dict[str, datetime]
    """Records in the recycle bin -> their stamp."""

    @property
    def known(self) -> set[str]:
        return set(self.live) | set(self.quarantined) | set(self.deleted)


def expected_store(
    entity: str, truth: list[dict], twin_truths: Mapping[str, list[dict]] | None = None
) -> Expected:
    """What the store holds of `entity` given its truth; for persons and leads, `twin_truths`
    (entity -> truth) holds both objects' truths, whose live rows are marked together."""
    expected = Expected({}, {}, {})
    for record in truth:
        if record["IsDeleted"]:
            expected.deleted[record["Id"]] = stamp_of(record)
            continue
        outcome = judged(entity, record)
        if isinstance(outcome, Failure):
            expected.quarantined[record["Id"]] = (outcome, record)
        else:
            expected.live[record["Id"]] = live_row(entity, record, outcome)
    if entity in PERSON_ENTITIES:
        together = dict(expected.live)
        for other, other_truth in (twin_truths or {}).items():
            if other != entity:
                together |= expected_store(other, other_truth).live
        mark_twins(together)
    return expected


# -- comparing with the store ------------------------------------------------------------------


def stored_rows(conn: sa.Connection, tenant_id: str, entity: str) -> dict[str, dict]:
    rows = entity_rows(entity)
    query = sa.select(rows.table).where(rows.of_tenant(tenant_id))
    skip = {"tenant_id", "synced_at"}
    return {
        r["external_id"]: {k: v for k, v in r.items() if k not in skip}
        for r in conn.execute(query).mappings()
    }


def stored_failures(conn: sa.Connection, tenant_id: str, entity: str) -> dict[str, list[dict]]:
    table = quality_failures
    query = sa.select(table).where(table.c.tenant_id == tenant_id, table.c.entity == entity)
    found: dict[str, list[dict]] = {}
    for f in conn.execute(query).mappings():
        found.setdefault(f["external_id"], []).append(dict(f))
    return found


def live_differences(
    expected: dict[str, dict], rows: dict[str, dict], skip: frozenset[str] = frozenset()
) -> list[str]:
    out = []
    for external_id, want in sorted(expected.items()):
        row = rows.get(external_id)
        if row is None:
            out.append(f"{external_id}: live and valid in Salesforce, no row")
            continue
        for column in sorted((set(want) | set(row)) - skip):
            if row.get(column, "<absent>") != want.get(column, "<absent>"):
                got, wanted = row.get(column, "<absent>"), want.get(column, "<absent>")
                out.append(f"{external_id}.{column}: stored {got!r}, expected {wanted!r}")
    return out


def deleted_differences(expected: dict[str, datetime], rows: dict[str, dict]) -> list[str]:
    out = []
    for external_id, stamp in sorted(expected.items()):
        row = rows.get(external_id)
        if row is None:
            out.append(f"{external_id}: in the recycle bin, no row flagged deleted")
            continue
        got = (row["is_deleted"], row["deleted_at"], row["system_modstamp"], row["deleted_reason"],
               row.get("duplicate_of"))  # fmt: skip
        if got != (True, stamp, stamp, "deleted", None):
            out.append(
                f"{external_id}: in the recycle bin at {stamp.isoformat()}, stored (is_deleted, "
                f"deleted_at, system_modstamp, deleted_reason, duplicate_of) = {got!r}"
            )
    return out


def purged_differences(truth_ids: set[str], rows: dict[str, dict]) -> list[str]:
    out = []
    for external_id in sorted(set(rows) - truth_ids):
        row = rows[external_id]
        got = (row["is_deleted"], row["deleted_reason"], row.get("duplicate_of"))
        if not (got[0] is True and got[1] in ("deleted", "purged") and got[2] is None):
            out.append(
                f"{external_id}: purged from Salesforce, stored (is_deleted, deleted_reason, "
                f"duplicate_of) = {got!r}"
            )
    return out


def unexpected_rows(entity: str, expected: Expected, rows: dict[str, dict]) -> list[str]:
    return [
        f"{external_id}: fails {expected.quarantined[external_id][0].stage} in Salesforce, "
        f"has a row ({_short(rows[external_id])})"
        for external_id in sorted(set(rows) & set(expected.quarantined))
    ]


def quarantine_differences(
    entity: str, expected: Expected, failures: dict[str, list[dict]]
) -> list[str]:
    out = [
        f"{external_id}: in quarantine ({entries[0]['stage']}: {entries[0]['reason']!r}) but "
        + ("valid in Salesforce" if external_id in expected.live else "not live in Salesforce")
        for external_id, entries in sorted(failures.items())
        if external_id not in expected.quarantined
    ]
    for external_id, (failure, record) in sorted(expected.quarantined.items()):
        entries = failures.get(external_id, [])
        if len(entries) != 1:
            shown = [(e["stage"], e["field"]) for e in entries]
            out.append(f"{external_id}: fails {failure.stage}, quarantine entries {shown}")
            continue
        out += entry_differences(entity, external_id, failure, record, entries[0])
    return out


def entry_differences(
    entity: str, external_id: str, failure: Failure, record: Mapping[str, Any], entry: dict
) -> list[str]:
    """One quarantine entry against the record's newest version."""
    out = []
    if entry["stage"] != failure.stage or (
        failure.stage != RAW_SCHEMA and entry["field"] not in failure.fields
    ):
        out.append(
            f"{external_id}: quarantined as ({entry['stage']}, {entry['field']}), expected "
            f"{failure.stage} on one of {sorted(failure.fields)}"
        )
    if entry["system_modstamp"] != stamp_of(record):
        out.append(
            f"{external_id}: quarantined version {entry['system_modstamp']}, newest "
            f"{stamp_of(record)}"
        )
    if failure.stage != RAW_SCHEMA:
        raw = entry["raw"] or {}
        for column, value in text_values(entity, record).items():
            if raw.get(column) != value:
                out.append(
                    f"{external_id}: quarantined raw {column} {raw.get(column)!r}, newest {value!r}"
                )
        for column, value in flag_values(entity, record).items():
            held = raw.get(column)
            if (None if held is None else str(held).strip().lower()) != value:
                out.append(f"{external_id}: quarantined raw {column} {held!r}, newest {value!r}")
    return out


def flag_values(entity: str, record: Mapping[str, Any]) -> dict[str, str | None]:
    """The boolean columns as a quarantine entry holds them before they are read: `true` or
    `false` in any case (JSON booleans as Python writes them, CSV as Salesforce does)."""
    return {
        column: None if (v := value_of(record, source)) is None else str(v).strip().lower()
        for column, source in MAPPING[entity].items()
        if source.kind == "boolean"
    }


def _short(row: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in row.items() if k != "custom_fields")[:160]


def differences(
    entity: str,
    truth: list[dict],
    rows: dict[str, dict],
    failures: dict[str, list[dict]],
    skip: frozenset[str] = frozenset(),
    twin_truths: Mapping[str, list[dict]] | None = None,
) -> tuple[Expected, list[str]]:
    expected = expected_store(entity, truth, twin_truths)
    found = live_differences(expected.live, rows, skip)
    found += unexpected_rows(entity, expected, rows)
    found += deleted_differences(expected.deleted, rows)
    found += purged_differences(expected.known, rows)
    found += quarantine_differences(entity, expected, failures)
    return expected, found


def reconcile(
    engine: sa.Engine,
    tenant_id: str,
    emulator: EmulatorHandle,
    entity: Entity,
    *,
    custom_fields: bool = True,
) -> dict:
    """Assert the store of one entity is exactly what the truth says; return counts.

    `custom_fields=False` leaves that column out, for a tenant synced with its own mapping:
    the reference is the default mapping, which fills no custom field. Every other column is
    still compared (a mapping that moves a canonical column is not the default either).

    Counts: `live` records in Salesforce, `stored` rows in the live set (not deleted, not an
    email twin, not a converted Lead), `twins` rows marked duplicate_of, `converted` Leads,
    `quarantined` records, `deleted` records in the recycle bin.
    """
    name = entity.name
    truth = served(emulator.control.truth(OBJECT[name]))
    twin_truths = (
        {e: served(emulator.control.truth(OBJECT[e])) for e in PERSON_ENTITIES}
        if name in PERSON_ENTITIES
        else None
    )
    with engine.connect() as conn:
        rows = stored_rows(conn, tenant_id, name)
        failures = stored_failures(conn, tenant_id, name)
    skip = frozenset() if custom_fields else frozenset({"custom_fields"})
    expected, found = differences(name, truth, rows, failures, skip, twin_truths)
    assert not found, (
        f"{tenant_id}/{name}: {len(found)} difference(s) from Salesforce's truth:\n  "
        + "\n  ".join(found[:SHOWN])
        + (f"\n  ... and {len(found) - SHOWN} more" if len(found) > SHOWN else "")
    )
    twins = sum(1 for r in expected.live.values() if r.get("duplicate_of"))
    converted = sum(1 for r in expected.live.values() if r.get("is_converted"))
    return {
        "live": len(expected.live) + len(expected.quarantined),
        "stored": len(expected.live) - twins - converted,
        "twins": twins,
        "converted": converted,
        "quarantined": len(expected.quarantined),
        "deleted": len(expected.deleted),
    }
