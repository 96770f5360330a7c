"""The three synced entities: each one's names, and which Salesforce object feeds which table.

An entity owns every name it goes by, so no module translates one into another: its Salesforce
object (`Contact`), its canonical table (`persons`, which also keys its mappings, cursors and
quarantine entries), its Dagster asset (`salesforce/contacts`) and its score entity type
(`person`, in the `scores` table and the writeback). `entity_for` finds an entity by any of
them, as a user may type it; `by_score_type` by the type a score row carries.

Each entity carries its default field mapping (Salesforce field path → canonical column). A
tenant's own mapping (issue: field mapping) replaces or extends it; without one, these apply.
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
class Entity:
    """A synced entity: its names, its default mapping and its column kinds."""

    name: str
    """The canonical table; also the key of the entity's mappings, cursors and quarantine."""
    sf_object: str
    """The Salesforce object its records come from and its scores are written to."""
    asset_name: str
    """The last part of its Dagster asset key, `salesforce/<asset_name>`."""
    score_type: str
    """Its `entity_type` in the `scores` table and the writeback (as `store.scoring` lists)."""
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
    def display_name(self) -> str:
        """How messages name it: its table and its Salesforce object, `persons (Contact)`."""
        return f"{self.name} ({self.sf_object})"

    @property
    def names(self) -> tuple[str, ...]:
        """Every name it goes by, each once: table, asset, score type, Salesforce object."""
        return tuple(dict.fromkeys((self.name, self.asset_name, self.score_type, self.sf_object)))

    def source_fields(self) -> list[str]:
        """The Salesforce fields to select, in mapping order, each once."""
        return list(dict.fromkeys(m.source for m in self.mappings))


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

PERSONS = Entity(
    name="persons",
    sf_object="Contact",
    asset_name="contacts",
    score_type="person",
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

SYNC_ORDER: tuple[Entity, ...] = (ACCOUNTS, PERSONS, OPPORTUNITIES)
ENTITIES: dict[str, Entity] = {e.name: e for e in SYNC_ORDER}
"""By table name."""
_BY_ANY_NAME: dict[str, Entity] = {n.lower(): e for e in SYNC_ORDER for n in e.names}
_BY_SCORE_TYPE: dict[str, Entity] = {e.score_type: e for e in SYNC_ORDER}


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
    """The entity whose score rows carry `score_type` (`account`, `person`, `opportunity`)."""
    try:
        return _BY_SCORE_TYPE[score_type]
    except KeyError:
        raise UnknownEntity(
            f"unknown entity type {score_type!r}; expected one of {', '.join(_BY_SCORE_TYPE)}"
        ) from None
