"""`gtm-pipeline sync`: the sync assets for one tenant, run in-process by Dagster itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast

import click

from gtm_pipeline.config import MAX_PARALLEL_READS
from gtm_pipeline.sync.entities import SYNC_ORDER, Entity, UnknownEntity, entity_for

if TYPE_CHECKING:
    import dagster as dg

    from gtm_pipeline.cli.reconcile import ReconcileRun
    from gtm_pipeline.salesforce.client import SalesforceClient

SUMMARY_COLUMNS = ("mode", "rows_read", "rows_loaded", "rows_rejected", "rows_deleted",
                   "pages", "api_calls")  # fmt: skip


@dataclass(frozen=True)
class SyncRun:
    success: bool
    run_id: str
    summary: dict[str, dict[str, object]]
    """Per entity: the materialization metadata shown in SUMMARY_COLUMNS."""
    failure: str | None
    reconciliation: ReconcileRun | None = None
    """The reconciliation run that follows a successful `full` sync."""


def failure_message(result: dg.ExecuteInProcessResult) -> str | None:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.step_failure_data.error
            while error is not None and error.cause is not None and "Failure" not in error.message:
                error = error.cause
            return (error.message if error else "the run failed").strip().splitlines()[0]
    return None if result.success else "the run failed"


def run_sync(
    tenant_id: str,
    *,
    full: bool = False,
    instance: dg.DagsterInstance | None = None,
    resources: dict[str, object] | None = None,
    reconcile: bool = True,
    entities: Sequence[Entity] = SYNC_ORDER,
    parallel_reads: int | None = None,
) -> SyncRun:
    """Materialize the sync assets of `entities` for one tenant partition; never raises on a
    failed run.

    Without an `instance`, the persistent local one is opened (and entered, so Dagster's
    process-wide state points at it) for the duration of the run. A successful `full` sync is
    followed by a run of the reconciliation checks (as the sensor does for scheduled full syncs),
    unless `reconcile` is False: a full read cannot see what was purged from Salesforce.
    """
    import dagster as dg

    from gtm_pipeline.cli.instance import (
        add_tenant_partition,
        local_instance,
        on_instance,
        program_resources,
    )
    from gtm_pipeline.defs.assets import asset_key, sync_assets, sync_run_config
    from gtm_pipeline.defs.partitions import TENANT_TAG

    if instance is None:
        with local_instance() as opened:
            return run_sync(
                tenant_id,
                full=full,
                instance=opened,
                resources=resources,
                reconcile=reconcile,
                entities=entities,
                parallel_reads=parallel_reads,
            )
    add_tenant_partition(instance, tenant_id)
    chosen = [asset_key(e) for e in entities]
    run_config = sync_run_config(full=full, parallel_reads=parallel_reads)
    with on_instance(instance):
        result = dg.materialize(
            sync_assets(),
            selection=chosen,
            instance=instance,
            partition_key=tenant_id,
            resources=resources or program_resources(),
            run_config={**run_config, "loggers": {"console": {"config": {"log_level": "INFO"}}}},
            tags={TENANT_TAG: tenant_id},
            raise_on_error=False,
        )
    summary = {}
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        entity = event.asset_key.path[-1]
        summary[entity] = {c: metadata[c].value for c in SUMMARY_COLUMNS if c in metadata}
    run = SyncRun(result.success, result.run_id, summary, failure_message(result))
    if not (reconcile and full and run.success):
        return run
    from gtm_pipeline.cli.reconcile import run_reconciliation

    reconciliation = run_reconciliation(
        tenant_id, instance=instance, resources=resources, entities=entities
    )
    return replace(run, reconciliation=reconciliation)


def chosen_entities(names: str) -> list[Entity]:
    """The entities named (comma-separated, any name each goes by), in sync order."""
    try:
        named = {entity_for(n) for n in names.split(",") if n.strip()}
    except UnknownEntity as exc:
        raise click.BadParameter(exc.user_message, param_hint="--entities") from None
    if not named:
        raise click.BadParameter("name at least one entity", param_hint="--entities")
    return [e for e in SYNC_ORDER if e in named]


def summary_table(summary: dict[str, dict[str, object]]) -> str:
    header = f"{'entity':<14}" + "".join(f"{c:>14}" for c in SUMMARY_COLUMNS)
    lines = [header]
    for entity in SYNC_ORDER:
        name = entity.asset_name
        row = summary.get(name)
        cells = [str(row.get(c, "")) if row else "not run" for c in SUMMARY_COLUMNS]
        lines.append(f"{name:<14}" + "".join(f"{c:>14}" for c in cells))
    return "\n".join(lines)


def change_since_last_sync(tenant_id: str, entities: Sequence[Entity]) -> str | None:
    """Why the tenant needs a sync of `entities` (`sync.changes.sync_reason`, at most one API call
    per entity), or None when Salesforce shows nothing new since the last good run of each. No
    Dagster, no pandera."""
    from gtm_pipeline.cli.common import open_store, org_client
    from gtm_pipeline.sync.changes import sync_reason

    engine = open_store()
    try:
        return sync_reason(
            engine,
            tenant_id,
            lambda: cast("SalesforceClient", org_client(engine, tenant_id)),
            entities,
        )
    finally:
        engine.dispose()


@click.command("sync")
@click.option("--tenant", required=True, help="Tenant id (a connected tenant).")
@click.option(
    "--full", is_flag=True, help="Read everything, not only what changed; then reconcile."
)
@click.option(
    "--force",
    is_flag=True,
    help="Run an incremental sync even when Salesforce shows no change since the last one.",
)
@click.option(
    "--entities",
    "entity_names",
    default=",".join(e.asset_name for e in SYNC_ORDER),
    show_default=True,
    help="Which entities to sync, comma-separated (any of their names).",
)
@click.option(
    "--parallel-reads",
    type=click.IntRange(1, MAX_PARALLEL_READS),
    default=None,
    help="Slices a large full read is read in at once (default: GTM_PARALLEL_READS, 8).",
)
def sync(
    tenant: str, full: bool, force: bool, entity_names: str, parallel_reads: int | None
) -> None:
    """Sync a tenant's accounts, contacts, opportunities, tasks and events now (Dagster
    in-process).

    Without --full or --force, Salesforce is asked first (one query per object) whether anything
    changed since the tenant's last good sync; when nothing did, no run starts."""
    entities = chosen_entities(entity_names)
    if not (full or force):
        reason = change_since_last_sync(tenant, entities)
        if reason is None:
            click.echo(
                f"Nothing changed in Salesforce for {tenant} since its last sync: "
                "no run started (--force runs one anyway)."
            )
            return
        click.echo(f"Syncing {tenant}: {reason}.")
    run = run_sync(tenant, full=full, entities=entities, parallel_reads=parallel_reads)
    click.echo(summary_table(run.summary))
    if not run.success:
        raise click.ClickException(run.failure or "the sync failed")
    click.echo(f"Sync of {tenant} succeeded (Dagster run {run.run_id}).")
    if run.reconciliation is not None:
        from gtm_pipeline.cli.reconcile import echo_outcome, reconciliation_table

        click.echo("\nReconciliation after the full sync:")
        if run.reconciliation.results:
            click.echo(reconciliation_table(run.reconciliation.results))
        echo_outcome(tenant, run.reconciliation)
