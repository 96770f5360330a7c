"""The synced entities: each one's names, and which Salesforce object feeds which table.

An entity owns every name it goes by, so no module translates one into another: its Salesforce
object (`Contact`), its canonical table (`persons`, which also keys its mappings, cursors and
quarantine entries), its Dagster asset (`salesforce/contacts`) and its score entity type
(`person`, in the `scores` table and the writeback). `entity_for` finds an entity by any of
them, as a user may type it; `by_score_type` by the type a score row carries.

Each entity carries its default field mapping (Salesforce field path → canonical column). A
tenant's own mapping (issue: field mapping) replaces or extends it; without one, these apply.
Columns no single field fills (when an activity happened, the object a polymorphic Id points at)
are `Derived` by fixed rules (`sync/derive.py`) that tenants do not remap.

Accounts, Contacts, Leads and Opportunities (`SCORED_ENTITIES`) are synced, scored and written
back; Contacts and Leads share the `persons` table.
Tasks and Events (`ACTIVITY_ENTITIES`, both in the `activities` table) are synced after them, for
engagement: they have no score type. `SYNC_ORDER` is all six, in the order they sync.
"""

from __future__ import annotations

from dataclasses import dataclass

from gtm_pipeline.errors import GtmError


class UnknownEntity(GtmError, ValueError):
    """A name that is no entity's; the message lists the names accepted."""

    retryable = False


@dataclass(frozen=True)
class FieldMapping:
    """One canonical column filled from one Salesforce field path (dot notation for relations)."""

    target: str
    source: str
    transform: str = "none"
    required: bool = False


@dataclass(frozen=True)
class Derived:
    """A canonical column computed by a rule of `sync/derive.py`, not by a tenant's mapping."""

    target: str
    rule: str
    fields: tuple[str, ...] = ()
    """Salesforce fields the rule reads (selected along with the mapped ones)."""
    columns: tuple[str, ...] = ()
    """Canonical columns, already mapped, the rule reads."""


@dataclass(frozen=True)
class Entity:
    """A synced entity: its names, its default mapping and its column kinds."""

    name: str
    """The entity's key: of its mappings, cursors and quarantine, and of its rows in the store
    (`store.tables.entity_rows`); the table's name when the entity has a table of its own."""
    sf_object: str
    """The Salesforce object its records come from and its scores are written to."""
    asset_name: str
    """The last part of its Dagster asset key, `salesforce/<asset_name>`."""
    score_type: str | None
    """Its `entity_type` in the `scores` table and the writeback (as `store.scoring` lists);
    None for an entity that is not scored."""
    mappings: tuple[FieldMapping, ...]
    required: tuple[tuple[str, ...], ...]
    """Alternatives of required columns: a row passes when every column of any one group is set."""
    integer_columns: tuple[str, ...] = ()
    number_columns: tuple[str, ...] = ()
    date_columns: tuple[str, ...] = ()
    datetime_columns: tuple[str, ...] = ()
    boolean_columns: tuple[str, ...] = ()
    email_columns: tuple[str, ...] = ()
    dedupe_on: tuple[str, ...] = ()
    """Normalised columns besides external_id on which records are deduplicated."""
    derived: tuple[Derived, ...] = ()
    archives: bool = False
    """Salesforce archives the object's old records (activities, after about a year): only
    queryAll returns them, so every read of the entity goes through queryAll."""

    @property
    def display_name(self) -> str:
        """How messages name it: its table and its Salesforce object, `persons (Contact)`."""
        return f"{self.name} ({self.sf_object})"

    @property
    def names(self) -> tuple[str, ...]:
        """Every name it goes by, each once: table, asset, score type, Salesforce object."""
        names = (self.name, self.asset_name, self.score_type, self.sf_object)
        return tuple(dict.fromkeys(n for n in names if n is not None))

    def source_fields(self) -> list[str]:
        """The Salesforce fields to select, in mapping order, each once."""
        return list(dict.fromkeys(m.source for m in self.mappings))

    def derived_fields(self) -> list[str]:
        """The Salesforce fields its derived columns read, each once."""
        return list(dict.fromkeys(f for d in self.derived for f in d.fields))


ACCOUNTS = Entity(
    name="accounts",
    sf_object="Account",
    asset_name="accounts",
    score_type="account",
    mappings=(
        FieldMapping("external_id", "Id", required=True),
        FieldMapping("name", "Name"),
        FieldMapping("website", "Website"),
        FieldMapping("industry", "Industry"),
        FieldMapping("employee_count", "NumberOfEmployees"),
        FieldMapping("annual_revenue", "AnnualRevenue"),
    ),
    required=(("external_id", "name"),),
    integer_columns=("employee_count",),
    number_columns=("annual_revenue",),
)

# A person is known by an email, or by a first and a last name.
_PERSON_REQUIRED = (("external_id", "email"), ("external_id", "first_name", "last_name"))
_PERSON_MAPPINGS = (
    FieldMapping("external_id", "Id", required=True),
    FieldMapping("email", "Email", transform="lowercase"),
    FieldMapping("first_name", "FirstName"),
    FieldMapping("last_name", "LastName"),
    FieldMapping("title", "Title"),
    FieldMapping("phone", "Phone"),
)

PERSONS = Entity(
    name="persons",
    sf_object="Contact",
    asset_name="contacts",
    score_type="person",
    mappings=(*_PERSON_MAPPINGS, FieldMapping("account_external_id", "AccountId")),
    required=_PERSON_REQUIRED,
    email_columns=("email",),
    dedupe_on=("email",),
)

# Leads share the `persons` table with Contacts (`store.tables.ENTITY_ROWS`): email twins span
# both objects, and a converted Lead leaves the live set for the Contact it became. What decides
# the live set (the conversion and what it made) is read by fixed rules, not by a mapping a
# tenant could change.
LEADS = Entity(
    name="leads",
    sf_object="Lead",
    asset_name="leads",
    score_type="lead",
    mappings=(
        *_PERSON_MAPPINGS,
        FieldMapping("company", "Company"),
        FieldMapping("lead_status", "Status"),
        FieldMapping("lead_source", "LeadSource"),
    ),
    required=_PERSON_REQUIRED,
    boolean_columns=("is_converted",),
    email_columns=("email",),
    dedupe_on=("email",),
    derived=(
        Derived("is_converted", "first_present", fields=("IsConverted",)),
        Derived("converted_contact_external_id", "first_present", fields=("ConvertedContactId",)),
        Derived("converted_account_external_id", "first_present", fields=("ConvertedAccountId",)),
    ),
)

OPPORTUNITIES = Entity(
    name="opportunities",
    sf_object="Opportunity",
    asset_name="opportunities",
    score_type="opportunity",
    mappings=(
        FieldMapping("external_id", "Id", required=True),
        FieldMapping("name", "Name"),
        FieldMapping("stage", "StageName"),
        FieldMapping("close_date", "CloseDate"),
        FieldMapping("account_external_id", "AccountId"),
        FieldMapping("amount", "Amount"),
    ),
    required=(("external_id", "name", "account_external_id"),),
    number_columns=("amount",),
    date_columns=("close_date",),
)

# Who and what an activity is about: required are its Id, when it happened, and at least one of
# the person (WhoId), the record (WhatId) or the account it belongs to.
_ACTIVITY_REQUIRED = tuple(
    ("external_id", "occurred_at", about)
    for about in ("who_external_id", "what_external_id", "account_external_id")
)
_ACTIVITY_MAPPINGS = (
    FieldMapping("external_id", "Id", required=True),
    FieldMapping("subject", "Subject"),
    FieldMapping("who_external_id", "WhoId"),
    FieldMapping("what_external_id", "WhatId"),
    FieldMapping("account_external_id", "AccountId"),
    FieldMapping("is_archived", "IsArchived"),
)
_ABOUT_OBJECTS = (
    Derived("who_object", "object_of_id", columns=("who_external_id",)),
    Derived("what_object", "object_of_id", columns=("what_external_id",)),
)

TASKS = Entity(
    name="tasks",
    sf_object="Task",
    asset_name="tasks",
    score_type=None,
    mappings=(
        *_ACTIVITY_MAPPINGS,
        FieldMapping("subtype", "TaskSubtype", transform="lowercase"),
        FieldMapping("status", "Status"),
        FieldMapping("duration_seconds", "CallDurationInSeconds"),
        FieldMapping("is_closed", "IsClosed"),
    ),
    required=_ACTIVITY_REQUIRED,
    integer_columns=("duration_seconds",),
    datetime_columns=("occurred_at",),
    boolean_columns=("is_closed", "is_archived"),
    derived=(
        # Done when completed; else due; else when it was logged.
        Derived(
            "occurred_at",
            "first_present",
            fields=("CompletedDateTime", "ActivityDate", "CreatedDate"),
        ),
        *_ABOUT_OBJECTS,
    ),
    archives=True,
)

EVENTS = Entity(
    name="events",
    sf_object="Event",
    asset_name="events",
    score_type=None,
    mappings=_ACTIVITY_MAPPINGS,
    required=_ACTIVITY_REQUIRED,
    integer_columns=("duration_seconds",),
    datetime_columns=("occurred_at",),
    boolean_columns=("is_archived",),
    derived=(
        Derived("occurred_at", "first_present", fields=("StartDateTime", "ActivityDateTime")),
        Derived("duration_seconds", "minutes_as_seconds", fields=("DurationInMinutes",)),
        Derived("subtype", "event_subtype", fields=("Type",)),
        *_ABOUT_OBJECTS,
    ),
    archives=True,
)

SCORED_ENTITIES: tuple[Entity, ...] = (ACCOUNTS, PERSONS, LEADS, OPPORTUNITIES)
ACTIVITY_ENTITIES: tuple[Entity, ...] = (TASKS, EVENTS)
SYNC_ORDER: tuple[Entity, ...] = (*SCORED_ENTITIES, *ACTIVITY_ENTITIES)
"""Activities last: they point at every other entity."""
ENTITIES: dict[str, Entity] = {e.name: e for e in SYNC_ORDER}
"""By key."""
_BY_ANY_NAME: dict[str, Entity] = {n.lower(): e for e in SYNC_ORDER for n in e.names}
_BY_SCORE_TYPE: dict[str, Entity] = {e.score_type: e for e in SCORED_ENTITIES if e.score_type}


def entity(name: str) -> Entity:
    """The entity whose table is `name`."""
    try:
        return ENTITIES[name]
    except KeyError:
        raise UnknownEntity(
            f"unknown entity {name!r}; expected one of {', '.join(ENTITIES)}"
        ) from None


def entity_for(name: str) -> Entity:
    """The entity a user named by any of its names, in any case (`contacts`, `Person`, ...)."""
    try:
        return _BY_ANY_NAME[name.strip().lower()]
    except KeyError:
        accepted = ", ".join("/".join(e.names) for e in SYNC_ORDER)
        raise UnknownEntity(f"unknown entity {name[:80]!r}; expected one of {accepted}") from None


def by_score_type(score_type: str) -> Entity:
    """The scored entity whose score rows carry `score_type` (`account`, `person`, `lead`,
    `opportunity`)."""
    try:
        return _BY_SCORE_TYPE[score_type]
    except KeyError:
        raise UnknownEntity(
            f"unknown entity type {score_type!r}; expected one of {', '.join(_BY_SCORE_TYPE)}"
        ) from None
