"""The three synced entities: which Salesforce object feeds which canonical table, and how.

Each entity carries its default field mapping (Salesforce field path → canonical column). A
tenant's own mapping (issue: field mapping) replaces or extends it; without one, these apply.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldMapping:
    """One canonical column filled from one Salesforce field path (dot notation for relations)."""

    target: str
    source: str
    transform: str = "none"
    required: bool = False


@dataclass(frozen=True)
class Entity:
    """A synced entity: canonical table name, Salesforce object, mapping and column kinds."""

    name: str
    sf_object: str
    mappings: tuple[FieldMapping, ...]
    required: tuple[tuple[str, ...], ...]
    """Alternatives of required columns: a row passes when every column of any one group is set."""
    integer_columns: tuple[str, ...] = ()
    number_columns: tuple[str, ...] = ()
    date_columns: tuple[str, ...] = ()
    email_columns: tuple[str, ...] = ()
    dedupe_on: tuple[str, ...] = ()
    """Normalised columns besides external_id on which records are deduplicated."""

    @property
    def asset_name(self) -> str:
        return {"persons": "contacts"}.get(self.name, self.name)

    def source_fields(self) -> list[str]:
        """The Salesforce fields to select, in mapping order, each once."""
        return list(dict.fromkeys(m.source for m in self.mappings))


ACCOUNTS = Entity(
    name="accounts",
    sf_object="Account",
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

PERSONS = Entity(
    name="persons",
    sf_object="Contact",
    mappings=(
        FieldMapping("external_id", "Id", required=True),
        FieldMapping("email", "Email", transform="lowercase"),
        FieldMapping("first_name", "FirstName"),
        FieldMapping("last_name", "LastName"),
        FieldMapping("title", "Title"),
        FieldMapping("phone", "Phone"),
        FieldMapping("account_external_id", "AccountId"),
    ),
    required=(("external_id", "email"), ("external_id", "first_name", "last_name")),
    email_columns=("email",),
    dedupe_on=("email",),
)

OPPORTUNITIES = Entity(
    name="opportunities",
    sf_object="Opportunity",
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

ENTITIES: dict[str, Entity] = {e.name: e for e in (ACCOUNTS, PERSONS, OPPORTUNITIES)}
SYNC_ORDER: tuple[Entity, ...] = (ACCOUNTS, PERSONS, OPPORTUNITIES)


def entity(name: str) -> Entity:
    try:
        return ENTITIES[name]
    except KeyError:
        raise ValueError(
            f"unknown entity {name!r}; expected one of {', '.join(ENTITIES)}"
        ) from None
