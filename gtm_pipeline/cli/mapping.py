"""`gtm-pipeline mapping`: show, suggest, set and validate a tenant's field mappings.

The mapping file format and its checks live in `sync/mapping_file.py`; these commands read and
write it.
"""

from __future__ import annotations

import click

from gtm_pipeline.cli.common import GtmGroup, checked_tenant, open_store, org_client


def _echo_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


@click.group("mapping", cls=GtmGroup)
def mapping() -> None:
    """Show, suggest, set and validate a tenant's field mappings."""


tenant_option = click.option("--tenant", required=True, help="Tenant id (a connected tenant).")
file_type = click.Path(exists=True, dir_okay=False, readable=True)


@mapping.command("show")
@tenant_option
@click.option("--entity", "entity_name", default=None, help="Only this entity.")
def show(tenant: str, entity_name: str | None) -> None:
    """Print the effective mappings: the defaults and what the tenant changed."""
    from gtm_pipeline.sync.entities import SYNC_ORDER, FieldMapping, entity_for
    from gtm_pipeline.sync.mapping import effective_mappings, load_mappings
    from gtm_pipeline.sync.mapping_file import show_table

    tenant = checked_tenant(tenant)
    entities = [entity_for(entity_name)] if entity_name else list(SYNC_ORDER)
    rows: list[tuple[str, FieldMapping, str]] = []
    with open_store().connect() as conn:
        for ent in entities:
            own = set(load_mappings(conn, tenant, ent.name))
            for m in effective_mappings(conn, tenant, ent.name):
                rows.append((ent.name, m, "tenant" if m in own else "default"))
    click.echo(show_table(rows))


@mapping.command("suggest")
@tenant_option
@click.option("--entity", "entity_name", required=True, help="Entity to suggest mappings for.")
@click.option("--refresh", is_flag=True, help="Read describe again instead of the cache.")
def suggest(tenant: str, entity_name: str, refresh: bool) -> None:
    """Print a mapping file (YAML) for the org's custom fields of an entity."""
    from gtm_pipeline.salesforce.metadata import describe_object
    from gtm_pipeline.sync.entities import entity_for
    from gtm_pipeline.sync.mapping_file import render_yaml, suggest_mappings

    tenant = checked_tenant(tenant)
    ent = entity_for(entity_name)
    client = org_client(open_store(), tenant)
    suggested = suggest_mappings(ent, describe_object(client, ent.sf_object, refresh=refresh))
    if not suggested:
        click.echo(f"# {ent.sf_object} has no custom fields", err=True)
    click.echo(render_yaml({ent.name: suggested}), nl=False)


@mapping.command("set")
@tenant_option
@click.option("--file", "path", required=True, type=file_type, help="The mapping YAML file.")
def set_(tenant: str, path: str) -> None:
    """Validate the file against the org's describe, then save it (all entities or none)."""
    from gtm_pipeline.sync.mapping_file import read_mapping_file, set_mappings_from_file

    tenant = checked_tenant(tenant)
    engine = open_store()
    client = org_client(engine, tenant)
    warnings = set_mappings_from_file(engine, client, tenant, read_mapping_file(path))
    for name, entity_warnings in warnings.items():
        _echo_warnings(entity_warnings)
        click.echo(f"{name}: saved")


@mapping.command("validate")
@tenant_option
@click.option("--file", "path", default=None, type=file_type, help="A file to check instead.")
def validate(tenant: str, path: str | None) -> None:
    """Check a mapping file, or the stored mappings, against the org's describe."""
    from gtm_pipeline.sync.entities import SYNC_ORDER
    from gtm_pipeline.sync.mapping import effective_mappings
    from gtm_pipeline.sync.mapping_file import (
        parse_mapping_file,
        read_mapping_file,
        validate_against_org,
    )

    tenant = checked_tenant(tenant)
    engine = open_store()
    if path:
        by_entity = parse_mapping_file(read_mapping_file(path))
    else:
        with engine.connect() as conn:
            by_entity = {e.name: effective_mappings(conn, tenant, e.name) for e in SYNC_ORDER}
    client = org_client(engine, tenant)
    for name, mappings in by_entity.items():
        _echo_warnings(validate_against_org(client, tenant, name, mappings))
        click.echo(f"{name}: valid")
