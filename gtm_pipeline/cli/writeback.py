"""`gtm-pipeline writeback`: score a tenant and write the scores back, run in-process by Dagster."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import dagster as dg

    from gtm_pipeline.defs.writeback_assets import WritebackProgress

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
    progress: WritebackProgress | None = None,
    log_level: str = "INFO",
) -> WritebackRun:
    """Materialize `scoring/scores` then `salesforce/score_writeback`; never raises on a failed run.

    Without an `instance`, the persistent local one is opened, so the quality block sees the
    checks of the syncs run there and the run shows up in the Dagster UI. `progress` receives
    (entity type, records settled, records to send) as each batch lands.
    """
    import dagster as dg

    from gtm_pipeline.cli.instance import (
        add_tenant_partition,
        local_instance,
        on_instance,
        program_resources,
    )
    from gtm_pipeline.cli.sync import failure_message
    from gtm_pipeline.defs.partitions import TENANT_TAG
    from gtm_pipeline.defs.scoring_assets import scores_asset
    from gtm_pipeline.defs.writeback_assets import (
        PROGRESS_RESOURCE,
        WRITEBACK_KEY,
        no_progress,
        progress_resource,
        score_writeback_asset,
    )

    if instance is None:
        with local_instance() as opened:
            return run_writeback(
                tenant_id,
                instance=opened,
                resources=resources,
                progress=progress,
                log_level=log_level,
            )
    add_tenant_partition(instance, tenant_id)
    with on_instance(instance):
        result = dg.materialize(
            [scores_asset, score_writeback_asset],
            instance=instance,
            partition_key=tenant_id,
            resources={
                **(resources or program_resources()),
                PROGRESS_RESOURCE: progress_resource(progress or no_progress),
            },
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            tags={TENANT_TAG: tenant_id},
            raise_on_error=False,
        )
    results = []
    for event in result.get_asset_materialization_events():
        if event.asset_key != WRITEBACK_KEY:
            continue
        results = reported_results(event.materialization.metadata)
    return WritebackRun(result.success, result.run_id, results, failure_message(result))


def reported_results(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The results a writeback run reported: its `results` table, each row with the refused
    records of its entity type from the `failures` table."""
    errors: dict[str, list[dict[str, Any]]] = {}
    for record in metadata["failures"].value.records:
        row = record.data
        errors.setdefault(row["entity_type"], []).append(
            {
                "entity_id": row["record"],
                "code": row["code"],
                "error": row["error"],
                "fields": row["fields"].split(", ") if row["fields"] else [],
            }
        )
    return [
        {**record.data, "errors": errors.get(record.data["entity_type"], [])}
        for record in metadata["results"].value.records
    ]


def results_table(results: list[dict[str, Any]]) -> str:
    header = f"{'entity type':<14}" + "".join(f"{c:>19}" for c in RESULT_COLUMNS)
    lines = [header]
    for row in results:
        cells = "".join(f"{row.get(c, '')!s:>19}" for c in RESULT_COLUMNS)
        lines.append(f"{row['entity_type']:<14}{cells}")
        lines.extend(_failure_line(error) for error in row.get("errors", []))
    return "\n".join(lines)


def _failure_line(error: dict[str, Any]) -> str:
    """One failed record: its id, Salesforce's error and the fields it blamed, if any."""
    fields = ", ".join(error.get("fields") or ())
    blamed = f" (fields: {fields})" if fields else ""
    return f"    {error['entity_id']}: {error['error']}{blamed}"


class ProgressBars:
    """One terminal progress bar per entity type, drawn on stderr as its batches land."""

    def __init__(self) -> None:
        self._open: dict[str, Any] = {}

    def __call__(self, entity_type: str, settled: int, to_send: int) -> None:
        bar = self._open.get(entity_type)
        if bar is None:
            bar = click.progressbar(
                length=to_send,
                label=f"{entity_type:<12} {to_send:>7} changed",
                file=sys.stderr,
                show_pos=True,
            ).__enter__()
            self._open[entity_type] = bar
        bar.update(settled - bar.pos)
        if settled >= to_send:
            self._open.pop(entity_type).__exit__(None, None, None)

    def close(self) -> None:
        """End the bars of a run that stopped part-way."""
        while self._open:
            self._open.popitem()[1].__exit__(None, None, None)


@click.command("writeback")
@click.option("--tenant", required=True, help="Tenant id (a connected, synced tenant).")
@click.option("--verbose-log", is_flag=True, help="Show Dagster's run log instead of the bars.")
def writeback(tenant: str, verbose_log: bool) -> None:
    """Score a tenant's records and write changed scores to Salesforce (Dagster in-process)."""
    if verbose_log:
        run = run_writeback(tenant)
    else:
        bars = ProgressBars()
        try:
            run = run_writeback(tenant, progress=bars, log_level="WARNING")
        finally:
            bars.close()
    if run.results:
        click.echo(results_table(run.results))
    if not run.success:
        raise click.ClickException(run.failure or "the writeback failed")
    click.echo(f"Writeback of {tenant} succeeded (Dagster run {run.run_id}).")
