"""The sync assets: salesforce/accounts → contacts → opportunities → tasks, events.

(No `from __future__ import annotations` here: Dagster reads the run config's type from the
asset function's signature at definition time.)

Each is partitioned by tenant, calls `sync_entity` (which loads the tenant's effective field
mappings and validates them once against the cached describe) and reports what it did as
metadata, mapping warnings included, plus one asset check per quality gate. Budget exhaustion,
a connection needing re-authorisation and a refused mapping stop the run cleanly (no retry: it
would fail the same way); transient failures are retried by the policy.
"""

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
from gtm_pipeline.sync.entities import ACTIVITY_ENTITIES, SCORED_ENTITIES, SYNC_ORDER, Entity
from gtm_pipeline.sync.runner import PageProgress, SyncOptions, SyncStats, sync_entity

# What a later attempt may fix is retried (an error's `retryable`, gtm_pipeline/errors.py); the
# rest stops the run at once with a clear message.
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


def _stopped(engine: sa.Engine, tenant_id: str, entity: Entity, exc: Exception) -> dg.Failure:
    """A clean stop: says why, where the cursor stands, and asks Dagster not to retry."""
    with engine.connect() as conn:
        cursor = get_cursor(conn, tenant_id, entity.name)
    where = "none" if cursor is None else f"{cursor.system_modstamp.isoformat()} {cursor.id}"
    return dg.Failure(
        description=f"{exc} The cursor stays at the last committed page; "
        "the next run resumes there.",
        metadata={"reason": type(exc).__name__, "cursor": where},
        allow_retries=False,
    )


def build_sync_asset(entity: Entity, upstream: Entity | None) -> dg.AssetsDefinition:
    key = asset_key(entity)

    @dg.asset(
        key=key,
        partitions_def=salesforce_tenants,
        deps=[asset_key(upstream)] if upstream else [],
        check_specs=quality_check_specs(key),
        retry_policy=SYNC_RETRY_POLICY,
        group_name="salesforce",
        kinds={"salesforce"},
        description=f"Salesforce {entity.sf_object} records of one tenant (table "
        f"`{entity_rows(entity.name).table.name}`).",
    )
    def _sync(
        context: dg.AssetExecutionContext,
        config: SyncConfig,
        salesforce: SalesforceResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        tenant_id = context.partition_key
        engine = warehouse.engine()

        def log_page(page: PageProgress) -> None:
            context.log.info(
                f"{page.entity}: {page.kind} page {page.page_number} committed "
                f"({page.rows} rows, {page.loaded} written, of {page.total_size})"
            )

        try:
            options = SyncOptions(
                full=config.full,
                lookback=timedelta(minutes=config.lookback_minutes),
                batch_size=salesforce.batch_size,
                run_id=context.run.run_id,
                bulk_threshold=salesforce.bulk_threshold,
                parallel_reads=config.parallel_reads or salesforce.parallel_reads,
            )
            client = salesforce.client(engine, tenant_id)
            stats = sync_entity(client, engine, tenant_id, entity, options, on_page=log_page)
        except GtmError as exc:
            if exc.retryable:
                raise
            raise _stopped(engine, tenant_id, entity, exc) from exc
        for warning in stats.mapping_warnings:
            context.log.warning(f"field mapping: {warning}")
        if stats.not_readable:
            context.log.warning(f"{entity.sf_object}: nothing read: {stats.not_readable}")
        return dg.MaterializeResult(
            metadata=_metadata(stats, _live_rows(engine, tenant_id, entity.name)),
            check_results=quality_check_results(
                key,
                stats.quality,
                run_failures(engine, tenant_id, entity.name, context.run.run_id),
                threshold=warehouse.quality_error_rate,
                standing=tenant_standing(engine, tenant_id, entity.name),
            ),
        )

    return _sync


def upstream_of(entity: Entity) -> Entity | None:
    """The asset an entity's sync waits for: the scored entities one after another, the
    activities after all of them (they point at accounts, persons and opportunities)."""
    if entity in ACTIVITY_ENTITIES:
        return SCORED_ENTITIES[-1]
    position = SCORED_ENTITIES.index(entity)
    return SCORED_ENTITIES[position - 1] if position else None


def sync_assets() -> list[dg.AssetsDefinition]:
    return [build_sync_asset(e, upstream_of(e)) for e in SYNC_ORDER]


def definitions() -> dg.Definitions:
    """The sync domain: one asset per entity, in dependency order, with its gate checks."""
    return dg.Definitions(assets=sync_assets())
