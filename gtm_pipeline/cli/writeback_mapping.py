"""`gtm-pipeline mapping writeback`: show, set, reset and validate where scores are written.

`set` takes `score_field=SalesforceField` pairs for one entity type, checks them against the
org's describe with the writeback rule (`writeback.mapping.refusal`: a custom, updateable,
non-formula, non-key, non-compound field of a fitting type and scale) and replaces the entity
type's map; fields left out are not written. A standard field is refused unless
`--allow-standard-field` is given, and then a warning names how many live records the
writeback will change; the choice is stored with the mapping. `reset` returns an entity type to
the default fields. `validate` reports every pair of the effective maps that breaks the rule
against the org's current describe, and exits 1 if any does (a writeback run would be blocked).
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from gtm_pipeline.cli.common import GtmGroup, checked_tenant, open_store, org_client

# `writeback.mapping.ALLOW_STANDARD_FLAG`, which the refusals name; spelled out so that `--help`
# does not import the writeback (a test checks they agree).
ALLOW_STANDARD_FLAG = "--allow-standard-field"


def parse_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """`score_field=SalesforceField` arguments to a map; each score field once."""
    from gtm_pipeline.writeback.mapping import WritebackMappingError

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


@click.group("writeback", cls=GtmGroup)
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
    from gtm_pipeline.sync.entities import by_score_type
    from gtm_pipeline.writeback.mapping import ENTITY_TYPES, is_default, load_writeback_map

    tenant = checked_tenant(tenant)
    rows = []
    with open_store().connect() as conn:
        for entity_type in ENTITY_TYPES:
            origin = "default" if is_default(conn, tenant, entity_type) else "tenant"
            target_object = by_score_type(entity_type).sf_object
            for score, target in load_writeback_map(conn, tenant, entity_type).items():
                rows.append((entity_type, score, f"{target_object}.{target}", origin))
    click.echo(map_table(rows))


def standard_field_warning(
    sf_object: str, targets: Sequence[str], live_records: int, entity_type: str
) -> str:
    """The warning printed when a score goes to a standard field on purpose."""
    fields = ", ".join(f"{sf_object}.{name}" for name in targets)
    return (
        f"warning: writing to standard field(s) {fields}, which hold the org's own data: the "
        f"writeback will overwrite them on up to {live_records} live {entity_type} record(s) "
        "of this tenant"
    )


@writeback_mapping.command("set")
@tenant_option
@entity_option
@click.option(
    ALLOW_STANDARD_FLAG,
    "allow_standard",
    is_flag=True,
    help="Allow standard Salesforce fields as targets (they hold the org's own data).",
)
@click.argument("pairs", nargs=-1)
def set_(tenant: str, entity_name: str, allow_standard: bool, pairs: tuple[str, ...]) -> None:
    """Check PAIRS (score_field=SalesforceField ...) against the org, then save them."""
    from gtm_pipeline.sync.entities import entity_for
    from gtm_pipeline.writeback.mapping import (
        save_writeback_map,
        standard_targets,
        validate_writeback_map,
    )
    from gtm_pipeline.writeback.selection import live_record_count

    tenant = checked_tenant(tenant)
    entity = entity_for(entity_name)
    entity_type = entity.score_type
    field_map = parse_pairs(pairs)
    engine = open_store()
    client = org_client(engine, tenant)
    checked = validate_writeback_map(
        client, entity_type, field_map, refresh=True, allow_standard=allow_standard
    )
    standard = standard_targets(client, entity_type, checked)
    with engine.begin() as conn:
        save_writeback_map(conn, tenant, entity_type, checked, allowed_standard=standard)
        live = live_record_count(conn, tenant, entity_type) if standard else 0
    if standard:
        warning = standard_field_warning(entity.sf_object, standard, live, entity_type)
        click.echo(warning, err=True)
    click.echo(f"{entity_type}: saved {len(checked)} writeback field(s)")


@writeback_mapping.command("reset")
@tenant_option
@entity_option
def reset(tenant: str, entity_name: str) -> None:
    """Forget the tenant's map for an entity type; scores go to the default fields again."""
    from gtm_pipeline.sync.entities import entity_for
    from gtm_pipeline.writeback.mapping import reset_writeback_map

    tenant = checked_tenant(tenant)
    entity_type = entity_for(entity_name).score_type
    with open_store().begin() as conn:
        reset_writeback_map(conn, tenant, entity_type)
    click.echo(f"{entity_type}: back to the default writeback fields")


@writeback_mapping.command("validate")
@tenant_option
def validate(tenant: str) -> None:
    """Report every pair of the effective maps that breaks the writeback rule (exit 1 if any)."""
    from gtm_pipeline.writeback.mapping import ENTITY_TYPES, stored_map_problems

    tenant = checked_tenant(tenant)
    engine = open_store()
    client = org_client(engine, tenant)
    invalid = 0
    for entity_type in ENTITY_TYPES:
        problems = stored_map_problems(client, engine, tenant, entity_type, refresh=True)
        invalid += len(problems)
        click.echo(f"{entity_type}: valid" if not problems else f"{entity_type}: invalid")
        for problem in problems:
            click.echo(f"  {problem}")
    if invalid:
        raise click.ClickException(
            f"{invalid} writeback field(s) break the writeback rule; the writeback is blocked "
            "until they are fixed (`mapping writeback set` or `reset`)"
        )
