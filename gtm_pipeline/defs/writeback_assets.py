"""`salesforce/score_writeback`: push a tenant's scores to Salesforce custom fields.

(No `from __future__ import annotations`: Dagster reads the resource types from the asset
function's signature at definition time.)

Before anything is sent, the quality block reads the latest completed evaluation of every quality
check of the three sync assets for this tenant partition (the checks are partitioned by tenant);
a failed check with ERROR severity stops the run without a single request, so data the gates
found too dirty never reaches Salesforce.
Records in quarantine and records deleted in Salesforce are left out. The engine sends only what
changed since the last confirmed write, so a rerun after a crash resends only unconfirmed records.
"""

from collections.abc import Callable, Sequence

import dagster as dg
import sqlalchemy as sa

# A tenant's latest check evaluation is read from the event log's check history, by partition:
# the public API has no reader for one partition's check history, only these storage types.
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import (
    COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
)

from gtm_pipeline.config import DEFAULT_ERROR_RATE
from gtm_pipeline.defs.assets import SYNC_RETRY_POLICY, asset_key
from gtm_pipeline.defs.partitions import partitioned_checks, salesforce_tenants
from gtm_pipeline.defs.resources import SalesforceResource, WarehouseResource
from gtm_pipeline.defs.scoring_assets import SCORES_KEY
from gtm_pipeline.errors import GtmError
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.sync.entities import SCORED_ENTITIES
from gtm_pipeline.sync.quality import STAGES
from gtm_pipeline.writeback import WritebackResult, write_back
from gtm_pipeline.writeback.mapping import block_unwritable_maps
from gtm_pipeline.writeback.selection import scores_to_write

WRITEBACK_KEY = dg.AssetKey(["salesforce", "score_writeback"])
FAILURE_RATE_CHECK = "failure_rate"
WRITEBACK_ORDER = tuple(e.score_type for e in SCORED_ENTITIES)
ERRORS_IN_METADATA = 200
"""Refused records listed in a run's `failures` table; `failures_total` counts them all."""

PROGRESS_RESOURCE = "writeback_progress"
WritebackProgress = Callable[[str, int, int], None]
"""Called with (entity type, records settled, changed records to send) as batches land."""


def no_progress(_entity_type: str, _settled: int, _to_send: int) -> None:
    """The default progress listener: the run's log lines are enough."""


def progress_resource(listener: WritebackProgress = no_progress) -> dg.ResourceDefinition:
    """`listener` as the run's progress resource (`gtm-pipeline writeback` passes its bar)."""
    return dg.ResourceDefinition.hardcoded_resource(
        listener, description="Receives writeback progress (a terminal progress bar, or nothing)."
    )


def quality_check_keys() -> list[dg.AssetCheckKey]:
    return [
        dg.AssetCheckKey(asset_key(entity), stage) for entity in SCORED_ENTITIES for stage in STAGES
    ]


def latest_evaluation(
    instance: dg.DagsterInstance, key: dg.AssetCheckKey, tenant_id: str
) -> AssetCheckEvaluation | None:
    """The newest completed evaluation of `key` for the tenant partition `tenant_id`.

    Read exactly, by partition, however many other tenants' runs came after it. Only completed
    evaluations count: a check left PLANNED by a crashed sync says nothing about the data, and
    the one before it still describes what was loaded.
    """
    history = instance.event_log_storage.get_asset_check_execution_history(
        key,
        limit=1,
        status=set(COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES),
        partition_filter=PartitionKeyFilter(key=tenant_id),
    )
    return history[0].evaluation if history else None


def blocking_quality_checks(instance: dg.DagsterInstance, tenant_id: str) -> list[str]:
    """The quality checks whose latest evaluation for `tenant_id` is a failed ERROR."""
    blocking = []
    for key in quality_check_keys():
        evaluation = latest_evaluation(instance, key, tenant_id)
        if (
            evaluation is not None
            and not evaluation.passed
            and evaluation.severity == dg.AssetCheckSeverity.ERROR
        ):
            blocking.append(f"{key.asset_key.to_user_string()}:{key.name}")
    return blocking


RESULT_COLUMNS = ("total", "success", "failed", "skipped_unchanged", "requests", "recovered")
FAILURE_COLUMNS = ("entity_type", "record", "code", "fields", "error")


def results_as_table(results: Sequence[WritebackResult]) -> dg.TableMetadataValue:
    """One row per entity type: records selected, written, refused, unchanged, requests made and
    records a crashed run had written, found by reading back."""
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("entity_type", "string"),
            *(dg.TableColumn(c, "int") for c in RESULT_COLUMNS),
        ]
    )
    rows = [
        dg.TableRecord({"entity_type": r.entity_type, **{c: getattr(r, c) for c in RESULT_COLUMNS}})
        for r in results
    ]
    return dg.MetadataValue.table(rows, schema=schema)


def failures_as_table(
    results: Sequence[WritebackResult], limit: int = ERRORS_IN_METADATA
) -> dg.TableMetadataValue:
    """The first `limit` records Salesforce refused, with its error and the fields it blamed:
    shown as plain text cells (nothing in them is rendered), so a record cannot restyle the UI."""
    schema = dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in FAILURE_COLUMNS])
    rows = [
        dg.TableRecord(
            {
                "entity_type": result.entity_type,
                "record": str(error.get("entity_id") or ""),
                "code": str(error.get("code") or ""),
                "fields": ", ".join(error.get("fields") or ()),
                "error": str(error.get("error") or ""),
            }
        )
        for result in results
        for error in result.errors
    ]
    return dg.MetadataValue.table(rows[:limit], schema=schema)


def failure_rate_check(
    results: Sequence[WritebackResult], threshold: float = DEFAULT_ERROR_RATE
) -> dg.AssetCheckResult:
    """WARN while failed records stay within `threshold` (the warehouse's quality error rate)
    of those sent, ERROR above."""
    failed = sum(r.failed for r in results)
    sent = failed + sum(r.success for r in results)
    rate = failed / sent if sent else 0.0
    return dg.AssetCheckResult(
        asset_key=WRITEBACK_KEY,
        check_name=FAILURE_RATE_CHECK,
        passed=failed == 0,
        severity=dg.AssetCheckSeverity.ERROR if rate > threshold else dg.AssetCheckSeverity.WARN,
        metadata={
            "records_sent": sent,
            "records_failed": failed,
            "failure_rate": dg.MetadataValue.float(round(rate, 6)),
            "error_threshold": dg.MetadataValue.float(threshold),
        },
    )


def _write_entity(
    context: dg.AssetExecutionContext,
    listener: WritebackProgress,
    client: SalesforceClient,
    engine: sa.Engine,
    tenant_id: str,
    entity_type: str,
) -> WritebackResult:
    with engine.connect() as conn:
        kept, field_map, left_out = scores_to_write(conn, tenant_id, entity_type)
    context.log.info(
        f"{entity_type}: {len(kept)} scored records to reconcile "
        f"({left_out} quarantined or deleted left out)"
    )

    def on_progress(settled: int, to_send: int) -> None:
        listener(entity_type, settled, to_send)

    return write_back(
        client, engine, tenant_id, entity_type, kept, field_map, on_progress=on_progress
    )


with partitioned_checks():
    FAILURE_RATE_SPEC = dg.AssetCheckSpec(
        FAILURE_RATE_CHECK,
        asset=WRITEBACK_KEY,
        description="Share of records Salesforce refused, against GTM_QUALITY_ERROR_RATE.",
        partitions_def=salesforce_tenants,
    )


@dg.asset(
    key=WRITEBACK_KEY,
    partitions_def=salesforce_tenants,
    deps=[SCORES_KEY],
    check_specs=[FAILURE_RATE_SPEC],
    retry_policy=SYNC_RETRY_POLICY,
    group_name="salesforce",
    kinds={"salesforce"},
    description="Scores written to the mapped custom fields of Accounts, Contacts and "
    "Opportunities (by default Fit_Score__c, Engagement_Score__c, Combined_Score__c, Tier__c, "
    "Scored_At__c); only what changed since the last confirmed write (table `writeback_state`).",
)
def score_writeback_asset(
    context: dg.AssetExecutionContext,
    salesforce: SalesforceResource,
    warehouse: WarehouseResource,
    writeback_progress: dg.ResourceParam[WritebackProgress],
) -> dg.MaterializeResult:
    tenant_id = context.partition_key
    blocking = blocking_quality_checks(context.instance, tenant_id)
    if blocking:
        raise dg.Failure(
            description="Writeback blocked: quality check(s) failed with ERROR severity for "
            f"tenant {tenant_id}: {', '.join(blocking)}. Nothing was written.",
            metadata={
                "blocking_checks": dg.MetadataValue.md("\n".join(f"- {b}" for b in blocking))
            },
            allow_retries=False,
        )
    engine = warehouse.engine()
    try:
        client = salesforce.client(engine, tenant_id)
        block_unwritable_maps(client, engine, tenant_id, WRITEBACK_ORDER)
        results = [
            _write_entity(context, writeback_progress, client, engine, tenant_id, entity_type)
            for entity_type in WRITEBACK_ORDER
        ]
    except GtmError as exc:
        if exc.retryable:
            raise
        raise dg.Failure(
            description=f"{exc} Confirmed records are settled; the next run sends the rest.",
            metadata={"reason": type(exc).__name__},
            allow_retries=False,
        ) from exc
    metadata: dict[str, object] = {"results": results_as_table(results)}
    metadata["requests"] = sum(r.requests for r in results)
    metadata["records_written"] = sum(r.success for r in results)
    metadata["records_failed"] = sum(r.failed for r in results)
    metadata["failures"] = failures_as_table(results)
    metadata["failures_total"] = sum(r.failed for r in results)
    metadata["salesforce_limit_info"] = dg.MetadataValue.json(client.limit_info.as_dict())
    return dg.MaterializeResult(
        metadata=metadata, check_results=[failure_rate_check(results, warehouse.quality_error_rate)]
    )


def definitions() -> dg.Definitions:
    """The writeback domain: the score writeback asset and its (silent) progress resource."""
    return dg.Definitions(
        assets=[score_writeback_asset], resources={PROGRESS_RESOURCE: progress_resource()}
    )
