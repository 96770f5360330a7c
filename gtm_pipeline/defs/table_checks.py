"""Checks of a tenant's whole table that run on their own, not inside a sync.

(No `from __future__ import annotations` here: Dagster reads the resource types from the check
functions' signatures at definition time.)

Two per sync asset, partitioned by tenant like it, each a read of the store (no API call):

- `quarantine_share`: the records held back from the live set (in quarantine, or email twins)
  as a share of every record of the entity the store knows for the tenant. Passes when none is
  held back; a WARN up to the warehouse's quality error rate (`GTM_QUALITY_ERROR_RATE`), an
  ERROR above it.
- `freshness`: the tenant's last successful sync of the entity ended at most `max_age` ago
  (`FRESHNESS_INTERVALS` sync intervals, `GTM_SYNC_INTERVAL_SECONDS`). Older is a WARN; an
  entity never synced successfully is an ERROR.

Executable per tenant from the UI (a check's "Execute", or a tenant's row of the checks), and run
every day for every connected tenant in their own job (`salesforce_table_checks`, on the
reconciliation's cron: defs/automation.py). The sync job
leaves them out: right after a sync, freshness has nothing to say and the gate checks already
judge the table.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from gtm_pipeline.config import Settings
from gtm_pipeline.defs.assets import asset_key
from gtm_pipeline.defs.partitions import partitioned_checks, salesforce_tenants
from gtm_pipeline.defs.resources import WarehouseResource
from gtm_pipeline.store.cursors import last_success
from gtm_pipeline.store.quarantine import entity_record_count, quarantined_record_count, twins_of
from gtm_pipeline.sync.entities import SYNC_ORDER, Entity

QUARANTINE_SHARE_CHECK = "quarantine_share"
FRESHNESS_CHECK = "freshness"
TABLE_CHECKS = (QUARANTINE_SHARE_CHECK, FRESHNESS_CHECK)
FRESHNESS_INTERVALS = 3
"""A tenant's data is fresh while its last successful sync is at most this many intervals old:
one missed or failed sync is tolerated, three in a row are not."""


def table_check_keys() -> list[dg.AssetCheckKey]:
    return [dg.AssetCheckKey(asset_key(e), name) for e in SYNC_ORDER for name in TABLE_CHECKS]


def quarantine_share_result(
    quarantined: int, twins: int, records: int, threshold: float
) -> dg.AssetCheckResult:
    """The verdict on a table holding `records`, `quarantined` of them in quarantine and `twins`
    marked as email twins."""
    held_back = quarantined + twins
    share = held_back / records if records else 0.0
    return dg.AssetCheckResult(
        passed=held_back == 0,
        severity=dg.AssetCheckSeverity.ERROR if share > threshold else dg.AssetCheckSeverity.WARN,
        metadata={
            "records": records,
            "quarantined": quarantined,
            "email_twins": twins,
            "held_back_share": dg.MetadataValue.float(round(share, 6)),
            "error_threshold": dg.MetadataValue.float(threshold),
        },
    )


def freshness_result(
    succeeded_at: datetime | None, now: datetime, max_age: timedelta
) -> dg.AssetCheckResult:
    """The verdict on a table last synced successfully at `succeeded_at` (None: never)."""
    limit = {"max_age_seconds": dg.MetadataValue.float(max_age.total_seconds())}
    if succeeded_at is None:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description="No sync of this tenant's entity has succeeded yet.",
            metadata=limit,
        )
    age = now - succeeded_at
    return dg.AssetCheckResult(
        passed=age <= max_age,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            **limit,
            "last_success": dg.MetadataValue.timestamp(succeeded_at),
            "age_seconds": dg.MetadataValue.float(round(age.total_seconds(), 1)),
        },
    )


def _quarantine_share_check(entity: Entity) -> dg.AssetChecksDefinition:
    def _check(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        tenant_id = context.partition_key
        with warehouse.engine().connect() as conn:
            quarantined = quarantined_record_count(conn, tenant_id, entity.name)
            twins, _ = twins_of(conn, tenant_id, entity.name, limit=0)
            records = entity_record_count(conn, tenant_id, entity.name)
        return quarantine_share_result(quarantined, twins, records, warehouse.quality_error_rate)

    return dg.asset_check(
        asset=asset_key(entity),
        name=QUARANTINE_SHARE_CHECK,
        partitions_def=salesforce_tenants,
        description=f"Share of the tenant's {entity.sf_object} records held back from table "
        f"`{entity.name}`'s live set (quarantined or email twins), against "
        "GTM_QUALITY_ERROR_RATE.",
    )(_check)


def _freshness_check(entity: Entity, max_age: timedelta) -> dg.AssetChecksDefinition:
    def _check(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        with warehouse.engine().connect() as conn:
            succeeded_at = last_success(conn, context.partition_key, entity.name)
        return freshness_result(succeeded_at, datetime.now(UTC), max_age)

    return dg.asset_check(
        asset=asset_key(entity),
        name=FRESHNESS_CHECK,
        partitions_def=salesforce_tenants,
        description=f"The tenant's last successful sync of table `{entity.name}` is at most "
        f"{max_age.total_seconds():g} s old ({FRESHNESS_INTERVALS} sync intervals).",
    )(_check)


def table_checks(sync_interval_seconds: int) -> list[dg.AssetChecksDefinition]:
    """Both checks for every sync asset; freshness allows `FRESHNESS_INTERVALS` intervals."""
    max_age = timedelta(seconds=FRESHNESS_INTERVALS * sync_interval_seconds)
    with partitioned_checks():
        return [
            check
            for entity in SYNC_ORDER
            for check in (_quarantine_share_check(entity), _freshness_check(entity, max_age))
        ]


def definitions(settings: Settings) -> dg.Definitions:
    """The table checks domain: `quarantine_share` and `freshness` on every sync asset."""
    return dg.Definitions(asset_checks=table_checks(settings.sync_interval_seconds))
