"""`gtm-pipeline reconcile`: the reconciliation checks of one tenant, run in-process by Dagster.

The run goes to the local instance, as `gtm-pipeline sync` does, so each evaluation shows in the
Dagster UI beside the scheduled ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from gtm_pipeline.sync.entities import SYNC_ORDER, Entity

if TYPE_CHECKING:
    import dagster as dg

ACCEPTED = ("clean", "repaired", "found", "not_readable")
"""Outcomes a command exits 0 on (a dry run's drift is "found": reported, not a failure)."""


@dataclass(frozen=True)
class ReconcileRun:
    success: bool
    """The run succeeded: every check was evaluated (whatever it found)."""
    run_id: str
    dry_run: bool
    results: dict[str, dict[str, Any]]
    """Per entity (asset name): the check's metadata values, `outcome` among them."""
    failure: str | None

    @property
    def drifted(self) -> list[str]:
        """Entities whose drift remains after the repair."""
        return [e for e, r in self.results.items() if r.get("outcome") not in ACCEPTED]

    @property
    def found(self) -> list[str]:
        """Entities where a dry run found drift."""
        return [e for e, r in self.results.items() if r.get("outcome") == "found"]

    @property
    def ok(self) -> bool:
        return self.success and not self.drifted

    def reason(self) -> str | None:
        """Why the reconciliation is not ok, in one line (None when it is)."""
        if not self.success:
            return self.failure or "the reconciliation run failed"
        if self.drifted:
            stops = {self.results[e].get("stopped", "none") for e in self.drifted} - {"none"}
            why = f" ({'; '.join(sorted(stops))})" if stops else ""
            return f"drift remains after the repair in {', '.join(self.drifted)}{why}"
        return None


def reconciliation_job_def(
    resources: Mapping[str, object], entities: Sequence[Entity] = SYNC_ORDER
) -> dg.JobDefinition:
    """The `salesforce_reconciliation` job bound to `resources`, subset to `entities`' checks."""
    import dagster as dg

    from gtm_pipeline.defs.assets import sync_assets
    from gtm_pipeline.defs.automation import reconciliation_job
    from gtm_pipeline.defs.reconciliation import reconciliation_check_key, reconciliation_checks

    job = dg.Definitions(
        # The checks' assets are in the graph (a check needs its asset) but not selected.
        assets=sync_assets(),
        asset_checks=reconciliation_checks(),
        jobs=[reconciliation_job],
        resources=resources,
    ).resolve_job_def(reconciliation_job.name)
    if list(entities) == list(SYNC_ORDER):
        return job
    return job.get_subset(asset_check_selection={reconciliation_check_key(e) for e in entities})


def run_reconciliation(
    tenant_id: str,
    *,
    dry_run: bool = False,
    instance: dg.DagsterInstance | None = None,
    resources: Mapping[str, object] | None = None,
    entities: Sequence[Entity] = SYNC_ORDER,
    log_level: str = "INFO",
) -> ReconcileRun:
    """Run the reconciliation checks of `entities` for one tenant partition; never raises on a
    failed run. Without an `instance`, the persistent local one is opened."""
    from gtm_pipeline.cli.instance import (
        add_tenant_partition,
        local_instance,
        on_instance,
        program_resources,
    )
    from gtm_pipeline.cli.sync import failure_message
    from gtm_pipeline.defs.partitions import TENANT_TAG
    from gtm_pipeline.defs.reconciliation import RECONCILIATION_CHECK, reconcile_run_config

    if instance is None:
        with local_instance() as opened:
            return run_reconciliation(
                tenant_id,
                dry_run=dry_run,
                instance=opened,
                resources=resources,
                entities=entities,
                log_level=log_level,
            )
    add_tenant_partition(instance, tenant_id)
    with on_instance(instance):
        job = reconciliation_job_def(resources or program_resources(), entities)
        result = job.execute_in_process(
            instance=instance,
            partition_key=tenant_id,
            run_config={
                **reconcile_run_config(dry_run, entities),
                "loggers": {"console": {"config": {"log_level": log_level}}},
            },
            tags={TENANT_TAG: tenant_id},
            raise_on_error=False,
        )
    results = {
        evaluation.asset_key.path[-1]: {k: v.value for k, v in evaluation.metadata.items()}
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.check_name == RECONCILIATION_CHECK
    }
    return ReconcileRun(result.success, result.run_id, dry_run, results, failure_message(result))


def _cell(row: dict[str, Any], name: str) -> str:
    return f"{row.get(f'before_{name}', '')}->{row.get(f'after_{name}', '')}"


def reconciliation_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per entity: outcome, each class as before->after, records re-read, API calls."""
    from gtm_pipeline.defs.assets import asset_key
    from gtm_pipeline.defs.reconciliation import COUNTED

    columns = (*COUNTED, "reread", "api_calls")
    widths = [max(len(c), 6) + 2 for c in columns]
    header = f"{'entity':<14}{'outcome':<14}" + "".join(
        f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)
    )
    lines = [header]
    for entity in SYNC_ORDER:
        name = asset_key(entity).path[-1]
        row = results.get(name)
        if row is None:
            lines.append(f"{name:<14}not run")
            continue
        cells = [_cell(row, c) for c in COUNTED]
        cells += [str(row.get("records_reread", "")), str(row.get("api_calls", ""))]
        lines.append(
            f"{name:<14}{row.get('outcome', ''):<14}"
            + "".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))
        )
    lines.append("(drift classes: records before->after the repair)")
    return "\n".join(lines)


@click.command("reconcile")
@click.option("--tenant", required=True, help="Tenant id (a connected, synced tenant).")
@click.option("--dry-run", is_flag=True, help="Compare and report only; repair nothing.")
def reconcile(tenant: str, dry_run: bool) -> None:
    """Compare a tenant's store with Salesforce by Id and stamp, and repair drift (Dagster
    in-process)."""
    run = run_reconciliation(tenant, dry_run=dry_run)
    if run.results:
        click.echo(reconciliation_table(run.results))
    echo_outcome(tenant, run)


def echo_outcome(tenant: str, run: ReconcileRun) -> None:
    """Say how the reconciliation ended; exit 1 with a one-line reason when it is not ok."""
    reason = run.reason()
    if reason is not None:
        raise click.ClickException(f"reconciliation of {tenant}: {reason}")
    if run.found:
        click.echo(
            f"Dry run: drift found in {', '.join(run.found)} for {tenant}; nothing was "
            "repaired (run without --dry-run to repair)."
        )
    click.echo(f"Reconciliation of {tenant} succeeded (Dagster run {run.run_id}).")
