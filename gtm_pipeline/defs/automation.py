"""What starts sync runs: a sensor (default) and a cron schedule (for teams that prefer one).

Both list the connected tenants from the store, make sure each is a `salesforce_tenants` partition,
and request one incremental sync run per tenant, tagged `gtm/tenant=<id>`. A tenant whose previous
run is still queued or running is skipped; dagster.yaml's tag limit is the second line of defence.
"""

import os

import dagster as dg
import sqlalchemy as sa

from gtm_pipeline.config import ConfigError
from gtm_pipeline.defs.assets import asset_key
from gtm_pipeline.defs.partitions import TENANT_TAG, salesforce_tenants
from gtm_pipeline.defs.resources import WarehouseResource
from gtm_pipeline.store.connections import list_connectors
from gtm_pipeline.sync.entities import SYNC_ORDER

DEFAULT_INTERVAL_SECONDS = 900
DEFAULT_CRON = "*/30 * * * *"
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]

sync_job = dg.define_asset_job(
    "salesforce_sync",
    selection=dg.AssetSelection.assets(*(asset_key(e) for e in SYNC_ORDER)),
    description="Accounts, then contacts, then opportunities, for one tenant.",
)


def sync_interval_seconds() -> int:
    raw = os.environ.get("GTM_SYNC_INTERVAL_SECONDS", "").strip()
    if not raw:
        return DEFAULT_INTERVAL_SECONDS
    if not raw.isdigit() or int(raw) < 30:
        raise ConfigError(
            "GTM_SYNC_INTERVAL_SECONDS must be a whole number of seconds, at least 30"
        )
    return int(raw)


def connected_tenants(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return [c.tenant_id for c in list_connectors(conn) if c.status == "connected"]


def _busy(instance: dg.DagsterInstance, tenant_id: str) -> bool:
    records = instance.get_run_records(
        dg.RunsFilter(tags={TENANT_TAG: tenant_id}, statuses=IN_PROGRESS), limit=1
    )
    return bool(records)


def sync_requests(
    instance: dg.DagsterInstance, engine: sa.Engine
) -> tuple[list[str], list[dg.RunRequest], list[str]]:
    """New partitions to add, run requests, and tenants skipped because a run is in progress."""
    tenants = connected_tenants(engine)
    known = set(instance.get_dynamic_partitions(salesforce_tenants.name))
    new = [t for t in tenants if t not in known]
    requests, skipped = [], []
    for tenant in tenants:
        if _busy(instance, tenant):
            skipped.append(tenant)
            continue
        requests.append(dg.RunRequest(partition_key=tenant, tags={TENANT_TAG: tenant}))
    return new, requests, skipped


@dg.sensor(
    job=sync_job,
    minimum_interval_seconds=sync_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds every connected tenant as a partition and requests an incremental sync.",
)
def tenant_sync_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult:
    new, requests, skipped = sync_requests(context.instance, warehouse.engine())
    if skipped:
        context.log.info(f"skipped tenants with a run in progress: {', '.join(skipped)}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[salesforce_tenants.build_add_request(new)] if new else [],
        skip_reason=None if requests else "no connected tenant is free to sync",
    )


@dg.schedule(
    job=sync_job,
    cron_schedule=os.environ.get("GTM_SYNC_CRON", DEFAULT_CRON),
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="The sensor's work on a cron, for teams that prefer a schedule.",
)
def tenant_sync_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
    new, requests, _skipped = sync_requests(context.instance, warehouse.engine())
    if new:
        context.instance.add_dynamic_partitions(salesforce_tenants.name, new)
    return requests or dg.SkipReason("no connected tenant is free to sync")
