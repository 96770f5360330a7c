"""The `reconciliation` asset check on each sync asset: the store compared with Salesforce, by Id.

(No `from __future__ import annotations` here: Dagster reads the run config's type from the
check function's signature at definition time.)

One standalone check per sync asset, partitioned by tenant like the asset (Dagster 1.13's
`@asset_check(partitions_def=...)`, a preview feature: the evaluation then carries the tenant
partition, so the UI shows each tenant's history). It calls `sync.reconciliation.reconcile_entity`
with the client and store the sync assets use and reports counts per drift class before and after
the repair. It passes when nothing drifted, WARNs when drift was found and repaired (or only
reported, in a dry run) and is an ERROR when drift remains, for example when the API budget
stopped the repair. A budget spent, or a connection needing re-authorisation, before the
listing is complete stops the check cleanly, as it stops a sync: no retry, nothing repaired.

The checks run in their own job (`salesforce_reconciliation`, defs/automation.py; partitioned
through a partitioned config, since Dagster 1.13 infers a job's partitions only from the assets it
materializes), never in the sync job: an incremental sync must not pay for a listing of every
record. (Materializing the sync assets from the UI or `dagster asset materialize` selects every
check of those assets, this one included: Dagster's default, deselectable in the UI.)
"""

from collections.abc import Sequence

import dagster as dg

from gtm_pipeline.defs.assets import SYNC_RETRY_POLICY, asset_key
from gtm_pipeline.defs.partitions import partitioned_checks, salesforce_tenants
from gtm_pipeline.defs.resources import SalesforceResource, WarehouseResource
from gtm_pipeline.errors import GtmError
from gtm_pipeline.sync.entities import SYNC_ORDER, Entity
from gtm_pipeline.sync.reconciliation import (
    DriftCounts,
    ReconcileOptions,
    Reconciliation,
    reconcile_entity,
    severity,
)

RECONCILIATION_CHECK = "reconciliation"
COUNTED = ("missing", "stale", "ghosts", "purged", "wrongly_deleted")
"""The drift classes reported, `purged` being the ghosts absent even from queryAll."""


class ReconcileConfig(dg.Config):
    """Run configuration of a reconciliation check."""

    dry_run: bool = False
    """Compare and report only; repair nothing."""


def reconciliation_check_key(entity: Entity) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(asset_key(entity), RECONCILIATION_CHECK)


def reconciliation_check_keys() -> list[dg.AssetCheckKey]:
    return [reconciliation_check_key(e) for e in SYNC_ORDER]


def check_op_name(entity: Entity) -> str:
    """The name of the op that runs `entity`'s check (run config goes under it)."""
    return dg.AssetCheckSpec(RECONCILIATION_CHECK, asset=asset_key(entity)).get_python_identifier()


def reconcile_run_config(
    dry_run: bool, entities: Sequence[Entity] = SYNC_ORDER
) -> dict[str, object]:
    """Run config of a run of the reconciliation checks of `entities`."""
    return {"ops": {check_op_name(e): {"config": {"dry_run": dry_run}} for e in entities}}


def summary(result: Reconciliation) -> str:
    """One line: what the reconciliation found and left."""
    found, left = result.before.total, result.after.total
    if result.not_readable:
        return f"Nothing compared: {result.not_readable}."
    if result.outcome == "clean":
        return f"Store matches Salesforce ({result.salesforce_records} records listed)."
    if result.outcome == "found":
        return f"Dry run: {found} drifted record(s) found; nothing repaired."
    if result.outcome == "repaired":
        return f"{found} drifted record(s) found and repaired."
    reason = f" Stopped: {result.stopped}" if result.stopped else ""
    return f"{left} of {found} drifted record(s) remain after the repair.{reason}"


def _counts(prefix: str, counts: DriftCounts) -> dict[str, int]:
    return {f"{prefix}_{name}": getattr(counts, name) for name in COUNTED}


def check_result(result: Reconciliation) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=result.outcome == "clean",
        severity=dg.AssetCheckSeverity.ERROR
        if severity(result) == "ERROR"
        else dg.AssetCheckSeverity.WARN,
        description=summary(result),
        metadata={
            "outcome": result.outcome,
            "dry_run": result.dry_run,
            **_counts("before", result.before),
            **_counts("after", result.after),
            "records_reread": result.records_reread,
            "records_flagged_deleted": result.records_flagged_deleted,
            "salesforce_records": result.salesforce_records,
            "listing": result.listing,
            "api_calls": result.api_calls,
            "duration_seconds": dg.MetadataValue.float(result.seconds),
            "stopped": result.stopped or "none",
            "not_readable": result.not_readable or "no",
        },
    )


def _stopped(exc: Exception) -> dg.Failure:
    """The sync assets' clean stop: says why and asks Dagster not to retry (it would fail the
    same way). Nothing was repaired: the reconciliation repairs only after a complete listing."""
    return dg.Failure(
        description=f"{exc} Nothing was repaired; the next reconciliation starts over.",
        metadata={"reason": type(exc).__name__},
        allow_retries=False,
    )


def build_reconciliation_check(entity: Entity) -> dg.AssetChecksDefinition:
    def _reconcile(
        context: dg.AssetCheckExecutionContext,
        config: ReconcileConfig,
        salesforce: SalesforceResource,
        warehouse: WarehouseResource,
    ) -> dg.AssetCheckResult:
        tenant_id = context.partition_key
        engine = warehouse.engine()
        try:
            options = ReconcileOptions(
                bulk_threshold=salesforce.bulk_threshold,
                batch_size=salesforce.batch_size,
                run_id=context.run.run_id,
            )
            client = salesforce.client(engine, tenant_id)
            result = reconcile_entity(
                client, engine, tenant_id, entity, dry_run=config.dry_run, options=options
            )
        except GtmError as exc:
            if exc.retryable:
                raise
            raise _stopped(exc) from exc
        context.log.info(f"{entity.name}: {summary(result)}")
        return check_result(result)

    with partitioned_checks():
        return dg.asset_check(
            asset=asset_key(entity),
            name=RECONCILIATION_CHECK,
            partitions_def=salesforce_tenants,
            retry_policy=SYNC_RETRY_POLICY,
            description=f"Every {entity.sf_object} Id, SystemModstamp and IsDeleted in "
            f"Salesforce (queryAll) compared with table `{entity.name}` and its quarantine: "
            "missing, stale, ghost (deleted or purged) and wrongly deleted records, repaired "
            "unless dry_run.",
        )(_reconcile)


def reconciliation_checks() -> list[dg.AssetChecksDefinition]:
    return [build_reconciliation_check(e) for e in SYNC_ORDER]


def definitions() -> dg.Definitions:
    """The reconciliation domain: one `reconciliation` check per sync asset."""
    return dg.Definitions(asset_checks=reconciliation_checks())
