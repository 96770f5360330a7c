"""A tenant's writeback mapping: which Salesforce field each score is written to, per entity type.

Stored in `field_mappings` with direction `writeback`, under the entity type (`person`,
`account`, `opportunity`): `source_path` holds the canonical score field the value is read from
and `target_field` the Salesforce field it is written to, so the table's primary key keeps two
scores off one field. A tenant with no stored rows for an entity type writes to the defaults,
the fields the emulator and the reference org setup define on Contact, Account and Opportunity.

A mapping is checked against the org's describe (`get_writeable_fields`) before it is saved:
the field exists, the integration user may update it, and its type fits the score (a number for
the three scores, text for the tier, a datetime for scoredAt).
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa

from gtm_pipeline.salesforce.metadata import DescribeClient, FieldInfo, describe_object
from gtm_pipeline.store.mappings import load_mapping_rows, replace_mapping_rows
from gtm_pipeline.writeback.payloads import (
    DATETIME_FIELDS,
    FLOAT_FIELDS,
    SCORE_FIELDS,
    SF_OBJECT,
    TEXT_FIELDS,
    sf_object_for,
    validate_field_map,
)

DIRECTION = "writeback"
ENTITY_TYPES = tuple(SF_OBJECT)
DEFAULT_FIELD_MAP: dict[str, str] = {
    "fit_score": "Fit_Score__c",
    "engagement_score": "Engagement_Score__c",
    "combined_score": "Combined_Score__c",
    "tier": "Tier__c",
    "scored_at": "Scored_At__c",
}
# Salesforce describe types a score fits into. An integer field would drop the decimals and a
# picklist may refuse a tier it does not list, so neither is offered.
NUMBER_TYPES = frozenset({"double", "percent", "currency"})
TEXT_TYPES = frozenset({"string", "textarea"})
DATETIME_TYPES = frozenset({"datetime"})
FITTING_TYPES: dict[str, frozenset[str]] = {
    **dict.fromkeys(FLOAT_FIELDS, NUMBER_TYPES),
    **dict.fromkeys(TEXT_FIELDS, TEXT_TYPES),
    **dict.fromkeys(DATETIME_FIELDS, DATETIME_TYPES),
}
KIND = {**dict.fromkeys(FLOAT_FIELDS, "a number"), "tier": "text", "scored_at": "a datetime"}


class WritebackMappingError(ValueError):
    """A writeback mapping that cannot be saved; the message names the field and the reason."""


def check_entity_type(entity_type: str) -> str:
    """`entity_type` if it is one scores are written for, else a WritebackMappingError."""
    try:
        sf_object_for(entity_type)
    except ValueError as exc:
        raise WritebackMappingError(str(exc)) from None
    return entity_type


def fits(score_field: str, field: FieldInfo) -> bool:
    """Whether `field` can hold `score_field`: updateable and of a fitting type."""
    return field.updateable and field.type in FITTING_TYPES[score_field]


def candidate_fields(fields: list[FieldInfo], score_field: str) -> list[FieldInfo]:
    """The fields of a describe a score may be written to (what a mapping form offers)."""
    return [f for f in fields if fits(score_field, f)]


def validate_writeback_map(
    client: DescribeClient, entity_type: str, field_map: Mapping[str, str], *, refresh: bool = False
) -> dict[str, str]:
    """Check `field_map` (score field → Salesforce field) against the org; returns it checked.

    Raises WritebackMappingError naming the first problem: an unknown score field, a name that
    is not a field name, a field the object lacks, one the user may not update, a wrong type.
    """
    check_entity_type(entity_type)
    try:
        checked = validate_field_map(field_map)
    except ValueError as exc:
        raise WritebackMappingError(str(exc)) from None
    sobject = sf_object_for(entity_type)
    by_name = {f.name.lower(): f for f in describe_object(client, sobject, refresh=refresh)}
    for score_field, target in checked.items():
        field = by_name.get(target.lower())
        if field is None:
            raise WritebackMappingError(f"{sobject} has no field {target} (for {score_field})")
        if not field.updateable:
            raise WritebackMappingError(
                f"{sobject}.{field.name} is not updateable by the integration user, "
                f"so {score_field} cannot be written to it"
            )
        if field.type not in FITTING_TYPES[score_field]:
            raise WritebackMappingError(
                f"{sobject}.{field.name} is a {field.type} field; {score_field} needs "
                f"{KIND[score_field]} field ({', '.join(sorted(FITTING_TYPES[score_field]))})"
            )
        checked[score_field] = field.name
    return checked


def load_writeback_map(conn: sa.Connection, tenant_id: str, entity_type: str) -> dict[str, str]:
    """The tenant's stored map for `entity_type`, or the defaults when it stored none."""
    check_entity_type(entity_type)
    rows = load_mapping_rows(conn, tenant_id, entity_type, DIRECTION)
    if not rows:
        return dict(DEFAULT_FIELD_MAP)
    stored = {row["source_path"]: row["target_field"] for row in rows}
    return {score: stored[score] for score in SCORE_FIELDS if score in stored}


def is_default(conn: sa.Connection, tenant_id: str, entity_type: str) -> bool:
    """True while the tenant has stored no map of its own for `entity_type`."""
    return not load_mapping_rows(conn, tenant_id, check_entity_type(entity_type), DIRECTION)


def save_writeback_map(
    conn: sa.Connection, tenant_id: str, entity_type: str, field_map: Mapping[str, str]
) -> int:
    """Replace the tenant's map for `entity_type` (already validated) in the caller's transaction.

    The caller validates first (`validate_writeback_map`): saving does not call Salesforce.
    """
    check_entity_type(entity_type)
    try:
        checked = validate_field_map(field_map)
    except ValueError as exc:
        raise WritebackMappingError(str(exc)) from None
    rows = [
        {
            "target_field": target,
            "source_path": score,
            "transform": None,
            "required": False,
            "sf_object": sf_object_for(entity_type),
        }
        for score, target in checked.items()
    ]
    return replace_mapping_rows(conn, tenant_id, entity_type, rows, DIRECTION)


def reset_writeback_map(conn: sa.Connection, tenant_id: str, entity_type: str) -> None:
    """Forget the tenant's own map for `entity_type`: it writes to the defaults again."""
    replace_mapping_rows(conn, tenant_id, check_entity_type(entity_type), [], DIRECTION)
