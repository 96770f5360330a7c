"""A tenant's writeback mapping: which Salesforce field each score is written to, per entity type.

Stored in `field_mappings` with direction `writeback`, under the entity type (`person`, `lead`,
`account`, `opportunity`): `source_path` holds the canonical score field the value is read from
and `target_field` the Salesforce field it is written to, so the table's primary key keeps two
scores off one field. A tenant with no stored rows for an entity type writes to the defaults,
the fields the emulator and the reference org setup define on Contact, Lead, Account and
Opportunity.

**The rule** (`refusal`, the one place it lives): a writeback overwrites the field on every
scored record, so a score may go only to a field that holds nothing else of the customer's.
The field must be

- custom (`custom: true`): a standard field such as Contact `Title`, Account `AnnualRevenue`
  or Opportunity `Amount` holds the org's own data. An operator may still choose one on
  purpose with `mapping writeback set --allow-standard-field` (the CLI only; it warns how many
  records it will change and stores `allow_standard_field` with the mapping); every other part
  of the rule still applies then;
- updateable by the integration user, and neither a formula (`calculated`) nor an auto-number;
- neither a compound (`address`, `location`) nor a part of one (`compoundFieldName` set:
  `MailingLatitude`, `FirstName`), which belong to the record's address or name;
- neither an external id nor unique: integrations match records on those, and one score on
  two records would be refused;
- of a type that fits the score: a number (`double`, `percent`, `currency`) for the three
  scores, text (`string`, `textarea`) for the tier, a `datetime` for scoredAt;
- for numbers, with a scale of at least `SCORE_DECIMALS` (2). Scores are sent with two
  decimals; a field of smaller scale would be rounded by Salesforce, so the values read back
  after a crash would never match what was sent and the record would be resent forever. We
  refuse such fields rather than round everywhere (payload, change detection, read-back), so
  one rounding rule (`payloads.SCORE_DECIMALS`) holds for every target.

`mapping writeback set` and the mapping page both check a map with `validate_writeback_map`,
and the page offers only the fields that pass (`candidate_fields`). `mapping writeback
validate` reports every stored (or default) pair that breaks the rule against the org's
current describe, and `block_unwritable_maps` stops a writeback run before its first request
when one does, naming the field and the reason.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import sqlalchemy as sa

from gtm_pipeline.errors import GtmError
from gtm_pipeline.salesforce.metadata import (
    DescribeClient,
    FieldInfo,
    describe_object,
    field_named,
)
from gtm_pipeline.store.mappings import load_mapping_rows, replace_mapping_rows
from gtm_pipeline.sync.entities import (
    ACCOUNTS,
    LEADS,
    OPPORTUNITIES,
    PERSONS,
    Entity,
    UnknownEntity,
    by_score_type,
)
from gtm_pipeline.sync.mapping import MappingError
from gtm_pipeline.writeback.payloads import (
    DATETIME_FIELDS,
    FLOAT_FIELDS,
    SCORE_DECIMALS,
    SCORE_FIELDS,
    SCORE_WHOLE_DIGITS,
    TEXT_FIELDS,
    validate_field_map,
)

DIRECTION = "writeback"
ENTITY_TYPES = tuple(e.score_type for e in (PERSONS, LEADS, ACCOUNTS, OPPORTUNITIES))
"""The entity types scores are written for, in the order `mapping writeback` lists them."""
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
ALLOW_STANDARD_FLAG = "--allow-standard-field"


class WritebackMappingError(GtmError, ValueError):
    """A writeback mapping that cannot be saved; the message names the field and the reason."""

    retryable = False


class WritebackBlocked(WritebackMappingError, MappingError):
    """A stored writeback mapping breaks the rule, so the run stops before sending anything.

    Also a sync MappingError: the Dagster assets treat those as "the user must act" and do not
    retry them.
    """


def scored_entity(entity_type: str) -> Entity:
    """The entity whose scores `entity_type` names, else a WritebackMappingError."""
    try:
        return by_score_type(entity_type)
    except UnknownEntity as exc:
        raise WritebackMappingError(str(exc)) from None


def check_entity_type(entity_type: str) -> str:
    """`entity_type` if it is one scores are written for, else a WritebackMappingError."""
    return scored_entity(entity_type).score_type


# -- the rule ----------------------------------------------------------------------------------


def _shape_refusal(score_field: str, field: FieldInfo) -> str | None:
    """Why `field`'s kind (compound, formula, key...) keeps any score out, or None."""
    if field.is_compound:
        return f"is a compound {field.type} field, which Salesforce does not let anyone write"
    if field.compound_parent:
        return (
            f"is part of the compound field {field.compound_parent}: {score_field} would "
            f"overwrite the record's {field.compound_parent}"
        )
    if field.calculated:
        return "is a formula field: Salesforce computes its value"
    if field.auto_number:
        return "is an auto-number field: Salesforce sets its value"
    if field.external_id:
        return f"is an external id field: integrations match records on it, not for {score_field}"
    if field.unique:
        return f"is a unique field: the same {score_field} on two records would be refused"
    if not field.updateable:
        return (
            f"is not updateable by the integration user, so {score_field} cannot be written to it"
        )
    return None


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _type_refusal(score_field: str, field: FieldInfo) -> str | None:
    """Why `field`'s type or decimal places cannot hold `score_field`, or None."""
    fitting = FITTING_TYPES[score_field]
    if field.type not in fitting:
        return (
            f"is {_a(field.type)} field; {score_field} needs {KIND[score_field]} field "
            f"({', '.join(sorted(fitting))})"
        )
    if field.type in NUMBER_TYPES and field.scale < SCORE_DECIMALS:
        return (
            f"keeps {field.scale} decimal place(s): Salesforce would round {score_field}, which "
            f"is sent with {SCORE_DECIMALS}, so what is read back would never match what was "
            f"sent; choose a number field with at least {SCORE_DECIMALS} decimal places"
        )
    if field.type in NUMBER_TYPES and field.precision - field.scale < SCORE_WHOLE_DIGITS:
        return (
            f"holds {field.precision - field.scale} digit(s) before the decimal point, and "
            f"{score_field} runs up to 100: Salesforce would refuse every record scoring 10 or "
            f"more; choose a number field with at least {SCORE_WHOLE_DIGITS} such digits"
        )
    return None


def refusal(score_field: str, field: FieldInfo, *, allow_standard: bool = False) -> str | None:
    """Why `field` may not receive `score_field`, in plain words; None when it may.

    The one place the writeback rule lives (see the module docstring). `allow_standard` lifts
    only the custom-field requirement, for a standard field chosen on purpose.
    """
    reason = _shape_refusal(score_field, field) or _type_refusal(score_field, field)
    if reason is None and not field.custom and not allow_standard:
        reason = (
            f"is a standard Salesforce field holding the org's own data; writing {score_field} "
            f"there needs `gtm-pipeline mapping writeback set {ALLOW_STANDARD_FLAG}`"
        )
    return reason


def candidate_fields(fields: list[FieldInfo], score_field: str) -> list[FieldInfo]:
    """The fields of a describe a score may be written to (what a mapping form offers)."""
    return [f for f in fields if refusal(score_field, f) is None]


def map_problems(
    sobject: str,
    fields: list[FieldInfo],
    field_map: Mapping[str, str],
    allowed_standard: Collection[str] = (),
) -> list[str]:
    """Each score → field pair of `field_map` that breaks the rule, as a sentence naming both.

    `allowed_standard`: lower-cased names of standard fields chosen on purpose.
    """
    problems = []
    for score_field, target in field_map.items():
        field = field_named(fields, target)
        if field is None:
            problems.append(f"{sobject} has no field {target} (for {score_field})")
            continue
        allowed = field.name.lower() in allowed_standard
        reason = refusal(score_field, field, allow_standard=allowed)
        if reason is not None:
            problems.append(f"{sobject}.{field.name} {reason}")
    return problems


# -- checking a map before it is saved -------------------------------------------------------


def _checked_names(field_map: Mapping[str, str]) -> dict[str, str]:
    try:
        return validate_field_map(field_map)
    except ValueError as exc:
        raise WritebackMappingError(str(exc)) from None


def validate_writeback_map(
    client: DescribeClient,
    entity_type: str,
    field_map: Mapping[str, str],
    *,
    refresh: bool = False,
    allow_standard: bool = False,
    allowed_standard: Collection[str] = (),
) -> dict[str, str]:
    """Check `field_map` (score field → Salesforce field) against the org; returns it checked,
    with each field spelled as Salesforce spells it.

    Raises WritebackMappingError naming the first problem: an unknown score field, a name that
    is not a field name, a field the object lacks, or one the rule refuses (`refusal`).
    """
    sobject = scored_entity(entity_type).sf_object
    checked = _checked_names(field_map)
    fields = describe_object(client, sobject, refresh=refresh)
    allowed = {t.lower() for t in checked.values()} if allow_standard else set()
    allowed |= {name.lower() for name in allowed_standard}
    problems = map_problems(sobject, fields, checked, allowed)
    if problems:
        raise WritebackMappingError(problems[0])
    return {score: _spelled(fields, target) for score, target in checked.items()}


def _spelled(fields: list[FieldInfo], target: str) -> str:
    field = field_named(fields, target)
    assert field is not None  # checked by map_problems
    return field.name


def standard_targets(
    client: DescribeClient, entity_type: str, field_map: Mapping[str, str]
) -> list[str]:
    """The targets of a checked map that are standard fields (cached describe)."""
    fields = describe_object(client, scored_entity(entity_type).sf_object)
    named = (field_named(fields, target) for target in field_map.values())
    return [f.name for f in named if f is not None and not f.custom]


# -- the store ---------------------------------------------------------------------------------


def load_writeback_map(conn: sa.Connection, tenant_id: str, entity_type: str) -> dict[str, str]:
    """The tenant's stored map for `entity_type`, or the defaults when it stored none."""
    check_entity_type(entity_type)
    rows = load_mapping_rows(conn, tenant_id, entity_type, DIRECTION)
    if not rows:
        return dict(DEFAULT_FIELD_MAP)
    stored = {row["source_path"]: row["target_field"] for row in rows}
    return {score: stored[score] for score in SCORE_FIELDS if score in stored}


def load_allowed_standard(conn: sa.Connection, tenant_id: str, entity_type: str) -> set[str]:
    """Lower-cased targets the tenant mapped to a standard field on purpose (the stored flag)."""
    rows = load_mapping_rows(conn, tenant_id, check_entity_type(entity_type), DIRECTION)
    return {row["target_field"].lower() for row in rows if row["allow_standard_field"]}


def is_default(conn: sa.Connection, tenant_id: str, entity_type: str) -> bool:
    """True while the tenant has stored no map of its own for `entity_type`."""
    return not load_mapping_rows(conn, tenant_id, check_entity_type(entity_type), DIRECTION)


def save_writeback_map(
    conn: sa.Connection,
    tenant_id: str,
    entity_type: str,
    field_map: Mapping[str, str],
    *,
    allowed_standard: Iterable[str] = (),
) -> int:
    """Replace the tenant's map for `entity_type` (already validated) in the caller's transaction.

    The caller validates first (`validate_writeback_map`): saving does not call Salesforce.
    `allowed_standard` names the targets that are standard fields chosen on purpose; the flag
    is stored with their rows.
    """
    sobject = scored_entity(entity_type).sf_object
    checked = _checked_names(field_map)
    allowed = {name.lower() for name in allowed_standard}
    rows = [
        {
            "target_field": target,
            "source_path": score,
            "transform": None,
            "required": False,
            "sf_object": sobject,
            "allow_standard_field": target.lower() in allowed,
        }
        for score, target in checked.items()
    ]
    return replace_mapping_rows(conn, tenant_id, entity_type, rows, DIRECTION)


def reset_writeback_map(conn: sa.Connection, tenant_id: str, entity_type: str) -> None:
    """Forget the tenant's own map for `entity_type`: it writes to the defaults again."""
    replace_mapping_rows(conn, tenant_id, check_entity_type(entity_type), [], DIRECTION)


# -- stored maps against the org's current describe -------------------------------------------


def stored_map_problems(
    client: DescribeClient,
    engine: sa.Engine,
    tenant_id: str,
    entity_type: str,
    *,
    refresh: bool = False,
) -> list[str]:
    """What breaks the rule in the tenant's effective map (stored, else the defaults) now.

    An org changes under a stored map (a field made standard-only, its scale lowered, turned
    into a formula), so this is checked again before every writeback, not only at save time.
    """
    with engine.connect() as conn:
        field_map = load_writeback_map(conn, tenant_id, entity_type)
        allowed = load_allowed_standard(conn, tenant_id, entity_type)
    sobject = scored_entity(entity_type).sf_object
    fields = describe_object(client, sobject, refresh=refresh)
    return map_problems(sobject, fields, field_map, allowed)


def block_unwritable_maps(
    client: DescribeClient,
    engine: sa.Engine,
    tenant_id: str,
    entity_types: Iterable[str] = ENTITY_TYPES,
) -> None:
    """Raise WritebackBlocked, before anything is sent, when any effective map breaks the rule.

    All entity types are checked first, so a run never writes accounts and then stops at
    persons. The message names every offending field and why.
    """
    problems = [
        f"{entity_type}: {problem}"
        for entity_type in entity_types
        for problem in stored_map_problems(client, engine, tenant_id, entity_type)
    ]
    if problems:
        raise WritebackBlocked(
            f"Writeback blocked for tenant {tenant_id}: the writeback mapping breaks the "
            f"writeback rule, so nothing was written. {'; '.join(problems)}. Fix it with "
            "`gtm-pipeline mapping writeback set` (or `reset`) and run again."
        )
