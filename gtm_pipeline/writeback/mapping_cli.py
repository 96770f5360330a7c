"""`gtm-pipeline mapping writeback`: show, set, reset and validate where scores are written.

`set` takes `score_field=SalesforceField` pairs for one entity type, checks them against the
org's describe (exists, updateable, fitting type) and replaces the entity type's map; fields
left out are not written. `reset` returns an entity type to the default fields.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from gtm_pipeline.sync.mapping_cli import checked_tenant, one_line_error, org_client, store_engine
from gtm_pipeline.writeback.mapping import (
    ENTITY_TYPES,
    WritebackMappingError,
    is_default,
    load_writeback_map,
    reset_writeback_map,
    save_writeback_map,
    validate_writeback_map,
)
from gtm_pipeline.writeback.payloads import sf_object_for

# The sync entity names a user may type for an entity type, besides the type itself.
ALIASES = {
    "persons": "person",
    "contacts": "person",
    "contact": "person",
    "accounts": "account",
    "opportunities": "opportunity",
}


def entity_type_for(name: str) -> str:
    """The entity type a user typed (`person`, `contacts`, ...); else WritebackMappingError."""
    key = name.strip().lower()
    entity_type = ALIASES.get(key, key)
    if entity_type not in ENTITY_TYPES:
        raise WritebackMappingError(
            f"unknown entity {name!r}; expected one of {', '.join(ENTITY_TYPES)}"
        )
    return entity_type


def parse_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """`score_field=SalesforceField` arguments to a map; each score field once."""
    if not pairs:
        raise WritebackMappingError("give at least one score_field=SalesforceField pair")
    field_map: dict[str, str] = {}
    for pair in pairs:
        score, sep, target = pair.partition("=")
        score, target = score.strip(), target.strip()
        if not sep or not score or not target:
            raise WritebackMappingError(f"{pair!r} is not score_field=SalesforceField")
        if score in field_map:
            raise WritebackMappingError(f"{score} is given twice")
        field_map[score] = target
    return field_map


def map_table(rows: Sequence[tuple[str, str, str, str]]) -> str:
    """Rows of (entity type, score field, Salesforce field, origin) as an aligned table."""
    header = ("entity type", "score field", "salesforce field", "origin")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


@click.group("writeback")
def writeback_mapping() -> None:
    """Where each score (fit, engagement, combined, tier, scoredAt) is written in Salesforce."""


tenant_option = click.option("--tenant", required=True, help="Tenant id (a connected tenant).")
entity_option = click.option(
    "--entity", "entity_name", required=True, help="person (Contact), account or opportunity."
)


@writeback_mapping.command("show")
@tenant_option
def show(tenant: str) -> None:
    """Print each entity type's score → field map and whether it is the default."""
    tenant = checked_tenant(tenant)
    rows = []
    with store_engine().connect() as conn:
        for entity_type in ENTITY_TYPES:
            origin = "default" if is_default(conn, tenant, entity_type) else "tenant"
            target_object = sf_object_for(entity_type)
            for score, target in load_writeback_map(conn, tenant, entity_type).items():
                rows.append((entity_type, score, f"{target_object}.{target}", origin))
    click.echo(map_table(rows))


@writeback_mapping.command("set")
@tenant_option
@entity_option
@click.argument("pairs", nargs=-1)
def set_(tenant: str, entity_name: str, pairs: tuple[str, ...]) -> None:
    """Check PAIRS (score_field=SalesforceField ...) against the org, then save them."""
    tenant = checked_tenant(tenant)
    try:
        entity_type = entity_type_for(entity_name)
        field_map = parse_pairs(pairs)
    except WritebackMappingError as exc:
        raise one_line_error(exc) from exc
    engine = store_engine()
    client = org_client(engine, tenant)
    try:
        checked = validate_writeback_map(client, entity_type, field_map, refresh=True)
    except Exception as exc:  # a field that does not fit, or describe failed: one line
        raise one_line_error(exc) from exc
    with engine.begin() as conn:
        save_writeback_map(conn, tenant, entity_type, checked)
    click.echo(f"{entity_type}: saved {len(checked)} writeback field(s)")


@writeback_mapping.command("reset")
@tenant_option
@entity_option
def reset(tenant: str, entity_name: str) -> None:
    """Forget the tenant's map for an entity type; scores go to the default fields again."""
    tenant = checked_tenant(tenant)
    try:
        entity_type = entity_type_for(entity_name)
    except WritebackMappingError as exc:
        raise one_line_error(exc) from exc
    with store_engine().begin() as conn:
        reset_writeback_map(conn, tenant, entity_type)
    click.echo(f"{entity_type}: back to the default writeback fields")


@writeback_mapping.command("validate")
@tenant_option
def validate(tenant: str) -> None:
    """Check every entity type's effective map against the org's describe."""
    tenant = checked_tenant(tenant)
    engine = store_engine()
    with engine.connect() as conn:
        maps = {e: load_writeback_map(conn, tenant, e) for e in ENTITY_TYPES}
    client = org_client(engine, tenant)
    for entity_type, field_map in maps.items():
        try:
            validate_writeback_map(client, entity_type, field_map, refresh=True)
        except Exception as exc:
            raise one_line_error(exc) from exc
        click.echo(f"{entity_type}: valid")
