"""`gtm-pipeline writeback`: score a tenant and write the scores back, run in-process by Dagster."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click
import dagster as dg

from gtm_pipeline.defs.commands import failure_message
from gtm_pipeline.defs.instance import local_instance, on_instance
from gtm_pipeline.defs.partitions import TENANT_TAG, salesforce_tenants
from gtm_pipeline.defs.scoring_assets import scores_asset
from gtm_pipeline.defs.writeback_assets import WRITEBACK_KEY, WRITEBACK_ORDER, score_writeback_asset

RESULT_COLUMNS = ("total", "success", "failed", "skipped_unchanged", "requests")


@dataclass(frozen=True)
class WritebackRun:
    success: bool
    run_id: str
    results: list[dict[str, Any]]
    """One WritebackResult (as a dict) per entity type written; empty when the run stopped."""
    failure: str | None


def run_writeback(
    tenant_id: str,
    *,
    instance: dg.DagsterInstance | None = None,
    resources: dict[str, object] | None = None,
) -> WritebackRun:
    """Materialize `scoring/scores` then `salesforce/score_writeback`; never raises on a failed run.

    Without an `instance`, the persistent local one is opened, so the quality block sees the
    checks of the syncs run there and the run shows up in the Dagster UI.
    """
    if instance is None:
        with local_instance() as opened:
            return run_writeback(tenant_id, instance=opened, resources=resources)
    from gtm_pipeline.definitions import defs

    if not instance.has_dynamic_partition(salesforce_tenants.name, tenant_id):
        instance.add_dynamic_partitions(salesforce_tenants.name, [tenant_id])
    with on_instance(instance):
        result = dg.materialize(
            [scores_asset, score_writeback_asset],
            instance=instance,
            partition_key=tenant_id,
            resources=resources or defs.resources,
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            tags={TENANT_TAG: tenant_id},
            raise_on_error=False,
        )
    results = []
    for event in result.get_asset_materialization_events():
        if event.asset_key != WRITEBACK_KEY:
            continue
        metadata = event.materialization.metadata
        results = [metadata[e].value for e in WRITEBACK_ORDER if e in metadata]
    return WritebackRun(result.success, result.run_id, results, failure_message(result))


def results_table(results: list[dict[str, Any]]) -> str:
    header = f"{'entity type':<14}" + "".join(f"{c:>19}" for c in RESULT_COLUMNS)
    lines = [header]
    for row in results:
        cells = "".join(f"{row.get(c, '')!s:>19}" for c in RESULT_COLUMNS)
        lines.append(f"{row['entity_type']:<14}{cells}")
        lines.extend(f"    {e['entity_id']}: {e['error']}" for e in row.get("errors", []))
    return "\n".join(lines)


@click.command("writeback")
@click.option("--tenant", required=True, help="Tenant id (a connected, synced tenant).")
def writeback(tenant: str) -> None:
    """Score a tenant's records and write changed scores to Salesforce (Dagster in-process)."""
    run = run_writeback(tenant)
    if run.results:
        click.echo(results_table(run.results))
    if not run.success:
        raise click.ClickException(run.failure or "the writeback failed")
    click.echo(f"Writeback of {tenant} succeeded (Dagster run {run.run_id}).")
