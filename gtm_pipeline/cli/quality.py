"""`gtm-pipeline quality --tenant T`: the quality gates' report of a tenant, at a terminal."""

from __future__ import annotations

import click

from gtm_pipeline.cli.common import open_store, program_settings
from gtm_pipeline.sync.entities import ENTITIES, SYNC_ORDER

DEFAULT_LIMIT = 20


@click.command("quality")
@click.option("--tenant", required=True, help="Tenant id whose report to print.")
@click.option(
    "--entity",
    type=click.Choice(list(ENTITIES)),
    default=None,
    help="Only this entity (default: all, in sync order).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="How many quarantined records to list per entity.",
)
def quality(tenant: str, entity: str | None, limit: int) -> None:
    """Print the quality gates' report of a tenant: counts per gate and the first failures."""
    import sqlalchemy as sa

    from gtm_pipeline.store.tables import sync_state
    from gtm_pipeline.sync.quality_report import quality_report

    threshold = program_settings().quality_error_rate
    engine = open_store()
    try:
        with engine.connect() as conn:
            known = conn.execute(
                sa.select(sa.func.count())
                .select_from(sync_state)
                .where(sync_state.c.tenant_id == tenant)
            ).scalar_one()
        if not known:
            raise click.ClickException(f"no sync recorded for tenant {tenant!r}; run a sync first")
        names = [entity] if entity else [e.name for e in SYNC_ORDER]
        click.echo(quality_report(engine, tenant, names, limit=limit, threshold=threshold))
    finally:
        engine.dispose()
