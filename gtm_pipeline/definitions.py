"""The Dagster code location: `dagster dev -m gtm_pipeline.definitions` or workspace.yaml."""

from __future__ import annotations

import dagster as dg

from gtm_pipeline.defs.assets import sync_assets
from gtm_pipeline.defs.automation import (
    reconcile_after_full_sync,
    reconciliation_job,
    sync_job,
    tenant_reconciliation_schedule,
    tenant_sync_schedule,
    tenant_sync_sensor,
)
from gtm_pipeline.defs.reconciliation import reconciliation_checks
from gtm_pipeline.defs.resources import WarehouseResource, salesforce_resource_from_env
from gtm_pipeline.defs.scoring_assets import scores_asset
from gtm_pipeline.defs.writeback_assets import (
    PROGRESS_RESOURCE,
    progress_resource,
    score_writeback_asset,
)

defs = dg.Definitions(
    assets=[*sync_assets(), scores_asset, score_writeback_asset],
    asset_checks=reconciliation_checks(),
    jobs=[sync_job, reconciliation_job],
    sensors=[tenant_sync_sensor, reconcile_after_full_sync],
    schedules=[tenant_sync_schedule, tenant_reconciliation_schedule],
    resources={
        # An empty database_url means DATABASE_URL, read when the run needs the store.
        "warehouse": WarehouseResource(),
        "salesforce": salesforce_resource_from_env(),
        PROGRESS_RESOURCE: progress_resource(),
    },
)
