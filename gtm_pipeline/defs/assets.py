"""The sync assets: salesforce/accounts, contacts, leads, opportunities, then tasks, events.

(No `from __future__ import annotations` here: Dagster reads the run config's type from the
asset function's signature at definition time.)

One multi-asset, subsettable, partitioned by tenant: its one step syncs the selected entities
of the run's tenant at once (`sync/entities_at_once.py`: a lane per table, one budget of
Salesforce cursors), the activities after the entities they point at. Each entity is reported
when it ends, as the materialization of its asset with what it did as metadata (mapping
warnings included) plus one asset check per quality gate; an entity that failed is not
materialized and the step fails once every other entity has ended. Budget exhaustion, a
connection needing re-authorisation and a refused mapping stop the run cleanly (no retry: it
would fail the same way); transient failures are retried by the policy, and a retry syncs only
the entities not yet materialized by the run.
"""

from collections.abc import Iterator, Sequence
from datetime import timedelta

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from gtm_pipeline.config import MAX_PARALLEL_READS
from gtm_pipeline.defs.checks import (
    quality_check_results,
    quality_check_specs,
    run_failures,
    tenant_standing,
)
from gtm_pipeline.defs.partitions import salesforce_tenants
from gtm_pipeline.defs.resources import SalesforceResource, WarehouseResource
from gtm_pipeline.errors import GtmError
from gtm_pipeline.store import get_cursor
from gtm_pipeline.store.quarantine import live_row_count
from gtm_pipeline.store.tables import entity_rows
from gtm_pipeline.sync.entities import SYNC_ORDER, Entity
from gtm_pipeline.sync.entities import entity as entity_named
from gtm_pipeline.sync.entities_at_once import EntityOutcome, sync_entities, waits_for
from gtm_pipeline.sync.runner import PageProgress, SyncOptions, SyncStats

# What a later attempt may fix is retried (an error's `retryable`, gtm_pipeline/errors.py); the
# rest stops the run at once with a clear message.
SYNC_OP = "salesforce_objects"
SYNC_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class SyncConfig(dg.Config):
    """Run configuration of a sync asset."""

    full: bool = False
    """Read everything, not only what changed since the cursor."""
    lookback_minutes: float = Field(default=10.0, ge=0)
    """How far before the cursor an incremental read starts, to catch late-visible commits."""
    parallel_reads: int | None = Field(default=None, ge=1, le=MAX_PARALLEL_READS)
    """Slices a large full read of this run's tenant is read in at once; None: the resource's
    `parallel_reads` (GTM_PARALLEL_READS). Lower it for an org whose user holds query cursors
    for other tools (Salesforce keeps 10 a user)."""


def asset_key(entity: Entity) -> dg.AssetKey:
    return dg.AssetKey(["salesforce", entity.asset_name])


def _live_rows(engine: sa.Engine, tenant_id: str, entity: str) -> int:
    with engine.connect() as conn:
        return live_row_count(conn, tenant_id, entity)


def _metadata(stats: SyncStats, row_count: int) -> dict[str, object]:
    return {
        "mode": stats.mode,
        "extraction": stats.extraction,
        "bulk_fallback": stats.bulk_fallback or "none",
        "not_readable": stats.not_readable or "no",
        "parallel_slices": stats.slices,
        "rows_read": stats.rows_read,
        "rows_loaded": stats.rows_loaded,
        "rows_rejected": stats.rows_rejected,
        "duplicates_removed": stats.duplicates_removed,
        "rows_deleted": stats.rows_deleted,
        "pages": stats.pages,
        "api_calls": stats.api_calls,
        "cursor_before": stats.cursor_before or "none",
        "cursor_after": stats.cursor_after or "none",
        "duration_seconds": dg.MetadataValue.float(stats.seconds),
        "dagster/row_count": dg.MetadataValue.int(row_count),
        "mapping_warnings": dg.MetadataValue.md(_warnings_markdown(stats.mapping_warnings)),
    }


def _warnings_markdown(warnings: list[str]) -> str:
    return "\n".join(f"- {w}" for w in warnings) if warnings else "none"


def _stopped(engine: sa.Engine, tenant_id: str, failed: Sequence[EntityOutcome]) -> dg.Failure:
    """A clean stop: says which entities failed and why, where their cursors stand, and asks
    Dagster not to retry."""
    lines, cursors = [], {}
    with engine.connect() as conn:
        for outcome in failed:
            cursor = get_cursor(conn, tenant_id, outcome.entity.name)
            cursors[f"cursor_{outcome.entity.name}"] = (
                "none" if cursor is None else f"{cursor.system_modstamp.isoformat()} {cursor.id}"
            )
            lines.append(f"{outcome.entity.name}: {outcome.error}")
    return dg.Failure(
        description=" ".join(lines) + " The cursor stays at the last committed page; "
        "the next run resumes there.",
        metadata={"reason": type(failed[0].error).__name__, **cursors},
        allow_retries=False,
    )


def _raised(engine: sa.Engine, tenant_id: str, failed: Sequence[EntityOutcome]) -> BaseException:
    """What the step raises for the entities that failed: a clean stop when one failure would
    fail the same way again (`GtmError.retryable` False), else the first error, which Dagster's
    retry policy retries."""
    final = [o for o in failed if isinstance(o.error, GtmError) and not o.error.retryable]
    if final:
        return _stopped(engine, tenant_id, final)
    return failed[0].error or RuntimeError(f"{failed[0].entity.name} failed")


def _spec(entity: Entity) -> dg.AssetSpec:
    return dg.AssetSpec(
        asset_key(entity),
        deps=[asset_key(e) for e in waits_for(entity)],
        partitions_def=salesforce_tenants,
        skippable=True,
        group_name="salesforce",
        kinds={"salesforce"},
        description=f"Salesforce {entity.sf_object} records of one tenant (table "
        f"`{entity_rows(entity.name).table.name}`).",
    )


def _synced_before(context: dg.AssetExecutionContext) -> set[dg.AssetKey]:
    """Assets an earlier attempt of this run materialized: a retry does not sync them again."""
    if context.retry_number == 0:
        return set()
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    return {r.asset_key for r in records if r.asset_key is not None}


def _materialized(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    engine: sa.Engine,
    stats: SyncStats,
) -> dg.MaterializeResult:
    tenant_id = context.partition_key
    key = asset_key(entity_named(stats.entity))
    for warning in stats.mapping_warnings:
        context.log.warning(f"{stats.entity}: field mapping: {warning}")
    if stats.not_readable:
        context.log.warning(f"{stats.entity}: nothing read: {stats.not_readable}")
    checks = quality_check_results(
        key,
        stats.quality,
        run_failures(engine, tenant_id, stats.entity, context.run.run_id),
        threshold=warehouse.quality_error_rate,
        standing=tenant_standing(engine, tenant_id, stats.entity),
    )
    selected = context.selected_asset_check_keys
    return dg.MaterializeResult(
        asset_key=key,
        metadata=_metadata(stats, _live_rows(engine, tenant_id, stats.entity)),
        check_results=[c for c in checks if dg.AssetCheckKey(key, c.check_name) in selected],
    )


def _sync_objects(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    salesforce: SalesforceResource,
    warehouse: WarehouseResource,
) -> Iterator[dg.MaterializeResult]:
    tenant_id = context.partition_key
    engine = warehouse.engine()
    done = _synced_before(context)
    entities = [e for e in SYNC_ORDER if asset_key(e) in context.selected_asset_keys - done]
    options = SyncOptions(
        full=config.full,
        lookback=timedelta(minutes=config.lookback_minutes),
        batch_size=salesforce.batch_size,
        run_id=context.run.run_id,
        bulk_threshold=salesforce.bulk_threshold,
        parallel_reads=config.parallel_reads or salesforce.parallel_reads,
    )
    try:
        client = salesforce.client(engine, tenant_id)
    except GtmError as exc:  # an unconnected tenant, a key that cannot decrypt its tokens
        if exc.retryable:
            raise
        raise dg.Failure(
            description=str(exc), metadata={"reason": type(exc).__name__}, allow_retries=False
        ) from exc
    failed: list[EntityOutcome] = []
    for event in sync_entities(client, engine, tenant_id, entities, options):
        if isinstance(event, PageProgress):
            context.log.info(
                f"{event.entity}: {event.kind} page {event.page_number} committed "
                f"({event.rows} rows, {event.loaded} written, of {event.total_size})"
            )
        elif event.stats is not None:
            yield _materialized(context, warehouse, engine, event.stats)
        elif event.error is not None:
            context.log.error(f"{event.entity.name}: sync failed: {event.error}")
            failed.append(event)
        else:
            context.log.warning(f"{event.entity.name}: not synced: {event.skipped}")
    if failed:
        raise _raised(engine, tenant_id, failed)


def sync_objects_asset(retry_policy: dg.RetryPolicy = SYNC_RETRY_POLICY) -> dg.AssetsDefinition:
    """The sync multi-asset, its step retried by `retry_policy` (a test waits less than 15 s)."""
    return dg.multi_asset(
        name=SYNC_OP,
        specs=[_spec(e) for e in SYNC_ORDER],
        check_specs=[spec for e in SYNC_ORDER for spec in quality_check_specs(asset_key(e))],
        can_subset=True,
        retry_policy=retry_policy,
        description="The selected Salesforce objects of one tenant, read at once "
        "(sync/entities_at_once.py).",
    )(_sync_objects)


salesforce_objects = sync_objects_asset()


def sync_assets() -> list[dg.AssetsDefinition]:
    """The sync assets: one multi-asset (one step per run), subsettable by entity."""
    return [salesforce_objects]


def sync_run_config(**config: object) -> dict[str, object]:
    """Run configuration giving the sync step `config` (SyncConfig's fields)."""
    return {"ops": {SYNC_OP: {"config": dict(config)}}}


def definitions() -> dg.Definitions:
    """The sync domain: one asset per entity, synced in one step, with its gate checks."""
    return dg.Definitions(assets=sync_assets())
