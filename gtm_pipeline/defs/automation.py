"""What starts sync runs: a sensor (default) and a cron schedule (for teams that prefer one).

Both list the connected tenants from the store, make sure each is a `salesforce_tenants` partition,
and request one incremental sync run per tenant, tagged `gtm/tenant=<id>`. A tenant whose previous
run is still queued or running is skipped; dagster.yaml's tag limit is the second line of defence.
The sensor also leaves out a tenant with nothing to sync: its last runs finished and Salesforce
has no record modified since its cursors (`sync.changes`: one `LIMIT 1` query per entity at
most), so an idle tenant costs a few API calls per tick instead of a run. The schedule syncs every
free tenant.

Their timing comes from the code location's settings (`definitions(settings)`).

What carries a sync on to Salesforce: a run-status sensor (`score_after_sync`, on by default)
requests the `salesforce_scores_writeback` job (`scoring/scores`, then `salesforce/score_writeback`)
for the tenant of every successful sync run, tagged like the sync, so it waits behind the
tenant's other runs. A run-status sensor rather than Declarative Automation conditions: its run
carries the tenant tag that holds the one-run-per-tenant limit, and the UI links each writeback
run to the sync run that caused it (its run key). The writeback blocks itself, with the reason
on the run, when a quality check of the tenant's latest sync failed with ERROR severity.

What starts reconciliation runs (the `reconciliation` checks, in their own job): a daily schedule
(`GTM_RECONCILE_CRON`) for every connected tenant, and a run-status sensor after each successful
sync run that read an entity in full. Neither skips a busy tenant: the run waits in the queue
behind the tenant's sync (one run per tenant), since a skipped day would be a day unreconciled.
"""

from collections.abc import Callable

import dagster as dg
import sqlalchemy as sa

# Dagster's own test of a cron string, the one its schedules apply, has no public name; used so a
# bad GTM_RECONCILE_CRON fails with a message naming the variable rather than a definition error.
from dagster._utils.schedules import is_valid_cron_string

from gtm_pipeline.config import ConfigError, Settings
from gtm_pipeline.defs.assets import asset_key
from gtm_pipeline.defs.partitions import TENANT_TAG, salesforce_tenants
from gtm_pipeline.defs.reconciliation import reconciliation_check_keys
from gtm_pipeline.defs.resources import SalesforceResource, WarehouseResource
from gtm_pipeline.defs.scoring_assets import SCORES_KEY
from gtm_pipeline.defs.table_checks import table_check_keys
from gtm_pipeline.defs.writeback_assets import WRITEBACK_KEY
from gtm_pipeline.store.connections import list_connectors
from gtm_pipeline.sync.changes import sync_reason
from gtm_pipeline.sync.entities import SYNC_ORDER

SYNC_CRON_VARIABLE = "GTM_SYNC_CRON"
DEFAULT_CRON = "*/30 * * * *"
RECONCILE_CRON_VARIABLE = "GTM_RECONCILE_CRON"
DEFAULT_RECONCILE_CRON = "0 4 * * *"
RUN_STATUS_SENSOR_INTERVAL_SECONDS = 5
"""How often the run-status sensors look for finished sync runs. Dagster's run-status sensor
ends its tick at the first run for which it returns a request or a skip reason, so each tick
carries on one sync run: at Dagster's default interval (30 s) a deployment finishing more than
120 sync runs an hour would fall further behind every hour."""
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]

sync_job = dg.define_asset_job(
    "salesforce_sync",
    # An asset selection includes every check on the assets: the reconciliation checks are taken
    # out, so an incremental sync never pays for a listing of every record, and the table checks
    # (defs/table_checks.py), which run daily and on demand.
    selection=dg.AssetSelection.assets(*(asset_key(e) for e in SYNC_ORDER))
    - dg.AssetSelection.checks(*reconciliation_check_keys(), *table_check_keys()),
    # One step (the sync multi-asset reads the entities at once), in the run's own process
    # instead of a process that loads the code location again.
    executor_def=dg.in_process_executor,
    description="Accounts, contacts, leads and opportunities read at once, then tasks and "
    "events, for one tenant.",
)

scores_writeback_job = dg.define_asset_job(
    "salesforce_scores_writeback",
    selection=dg.AssetSelection.assets(SCORES_KEY, WRITEBACK_KEY),
    executor_def=dg.in_process_executor,  # scores, then the writeback: one after the other
    description="A tenant's scores computed from its synced tables, then written back to "
    "Salesforce (blocked by a failed ERROR quality check of the tenant).",
)

reconciliation_job = dg.define_asset_job(
    "salesforce_reconciliation",
    selection=dg.AssetSelection.checks(*reconciliation_check_keys()),
    # Dagster 1.13 infers a job's partitions from the assets it materializes only, so a job of
    # checks alone is unpartitioned even though the checks are (and define_asset_job's
    # partitions_def is deprecated and only validated against those assets). A partitioned
    # config makes it a `salesforce_tenants` job: a partition picker in the launchpad, run
    # requests and in-process runs by partition key, each run tagged with its tenant.
    config=dg.PartitionedConfig(
        partitions_def=salesforce_tenants, run_config_for_partition_key_fn=lambda _key: {}
    ),
    description="The reconciliation check of accounts, contacts and opportunities, for one "
    "tenant: Salesforce's Ids and stamps compared with the store, drift repaired.",
)

table_checks_job = dg.define_asset_job(
    "salesforce_table_checks",
    selection=dg.AssetSelection.checks(*table_check_keys()),
    # Partitioned like the reconciliation job, for the same reason.
    config=dg.PartitionedConfig(
        partitions_def=salesforce_tenants, run_config_for_partition_key_fn=lambda _key: {}
    ),
    description="quarantine_share and freshness of accounts, contacts and opportunities, for "
    "one tenant: reads of the store, no API call.",
)


def checked_cron(settings: Settings, variable: str, default: str) -> str:
    """The cron expression in `variable` of `settings` (`default` when unset), one Dagster
    accepts, or a ConfigError naming the variable."""
    raw = settings.cron(variable, default)
    if not is_valid_cron_string(raw):
        raise ConfigError(
            f"{variable} must be a five-field cron expression such as '{default}' (got {raw!r})"
        )
    return raw


def connected_tenants(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return [c.tenant_id for c in list_connectors(conn) if c.status == "connected"]


def _new_partitions(instance: dg.DagsterInstance, tenants: list[str]) -> list[str]:
    known = set(instance.get_dynamic_partitions(salesforce_tenants.name))
    return [t for t in tenants if t not in known]


def tenant_request(tenant_id: str, run_key: str | None = None) -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key, partition_key=tenant_id, tags={TENANT_TAG: tenant_id})


def _busy(instance: dg.DagsterInstance, tenant_id: str) -> bool:
    records = instance.get_run_records(
        dg.RunsFilter(tags={TENANT_TAG: tenant_id}, statuses=IN_PROGRESS), limit=1
    )
    return bool(records)


def sync_requests(
    instance: dg.DagsterInstance,
    engine: sa.Engine,
    reason_for: Callable[[str], str | None] = lambda _tenant: "scheduled",
) -> tuple[list[str], list[dg.RunRequest], dict[str, str]]:
    """New partitions to add, run requests, and the tenants left out with why: a run in
    progress, or no `reason_for` them to sync (which says why a tenant should sync, or None)."""
    tenants = connected_tenants(engine)
    requests, left_out = [], {}
    for tenant in tenants:
        reason = "a run in progress" if _busy(instance, tenant) else None
        if reason is None and reason_for(tenant) is None:
            reason = "nothing changed"
        if reason is None:
            requests.append(tenant_request(tenant))
        else:
            left_out[tenant] = reason
    return _new_partitions(instance, tenants), requests, left_out


def sync_tick(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    salesforce: SalesforceResource,
) -> dg.SensorResult:
    """The sync sensor's evaluation: new partitions, and one run request per free tenant that
    has something to sync (see `sync.changes`; at most one API call per entity)."""
    engine = warehouse.engine()

    def reason_for(tenant: str) -> str | None:
        return sync_reason(engine, tenant, lambda: salesforce.client(engine, tenant))

    new, requests, left_out = sync_requests(context.instance, engine, reason_for)
    for tenant, reason in left_out.items():
        context.log.info(f"{tenant}: not synced ({reason})")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[salesforce_tenants.build_add_request(new)] if new else [],
        skip_reason=None if requests else "no connected tenant has anything to sync",
    )


def sync_schedule_tick(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
    """The sync schedule's evaluation: the sensor's work, on a cron."""
    new, requests, _left_out = sync_requests(context.instance, warehouse.engine())
    if new:
        context.instance.add_dynamic_partitions(salesforce_tenants.name, new)
    return requests or dg.SkipReason("no connected tenant is free to sync")


def reconciliation_tick(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
    """The daily schedules' evaluation: one run request per connected tenant."""
    tenants = connected_tenants(warehouse.engine())
    new = _new_partitions(context.instance, tenants)
    if new:
        context.instance.add_dynamic_partitions(salesforce_tenants.name, new)
    return [tenant_request(t) for t in tenants] or dg.SkipReason("no connected tenant")


def sync_sensor(settings: Settings) -> dg.SensorDefinition:
    """Every `GTM_SYNC_INTERVAL_SECONDS` (default 900), on by default."""
    return dg.sensor(
        name="tenant_sync_sensor",
        job=sync_job,
        minimum_interval_seconds=settings.sync_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Adds every connected tenant as a partition and requests an incremental sync.",
    )(sync_tick)


def sync_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """On `GTM_SYNC_CRON` (default every 30 minutes), off by default."""
    return dg.schedule(
        name="tenant_sync_schedule",
        job=sync_job,
        cron_schedule=checked_cron(settings, SYNC_CRON_VARIABLE, DEFAULT_CRON),
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="The sensor's work on a cron, for teams that prefer a schedule.",
    )(sync_schedule_tick)


def reconciliation_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """On `GTM_RECONCILE_CRON` (default daily at 04:00), on by default."""
    return dg.schedule(
        name="tenant_reconciliation_schedule",
        job=reconciliation_job,
        cron_schedule=checked_cron(settings, RECONCILE_CRON_VARIABLE, DEFAULT_RECONCILE_CRON),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Reconciles every connected tenant with Salesforce (cron: GTM_RECONCILE_CRON).",
    )(reconciliation_tick)


def read_in_full(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The assets that a run materialized in "full" mode (the sync assets' `mode` metadata)."""
    records = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    full = []
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is None:
            continue
        mode = materialization.metadata.get("mode")
        if mode is not None and mode.value == "full":
            full.append(materialization.asset_key.to_user_string())
    return full


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[sync_job],
    request_job=reconciliation_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=RUN_STATUS_SENSOR_INTERVAL_SECONDS,
    description="After a successful sync run that read any entity in full, requests the "
    "reconciliation of that tenant.",
)
def reconcile_after_full_sync(context: dg.RunStatusSensorContext) -> dg.RunRequest | None:
    """None (logged) for a run that needs no reconciliation: Dagster then goes on to the next
    finished run in the same tick, where a skip reason would end the tick."""
    run = context.dagster_run
    tenant = context.partition_key
    if tenant is None:
        context.log.info(f"run {run.run_id} has no tenant partition")
        return None
    full = read_in_full(context.instance, run.run_id)
    if not full:
        context.log.info(f"run {run.run_id} of {tenant} was incremental")
        return None
    context.log.info(f"{tenant}: {', '.join(full)} read in full; requesting reconciliation")
    return tenant_request(tenant, run_key=f"reconcile-after-{run.run_id}")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[sync_job],
    request_job=scores_writeback_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=RUN_STATUS_SENSOR_INTERVAL_SECONDS,
    description="After each successful sync run of a tenant, requests that tenant's scores "
    "and score writeback.",
)
def score_after_sync(context: dg.RunStatusSensorContext) -> dg.RunRequest | None:
    run = context.dagster_run
    tenant = context.partition_key
    if tenant is None:
        context.log.info(f"run {run.run_id} has no tenant partition")
        return None
    context.log.info(f"{tenant}: synced by run {run.run_id}; requesting scores and writeback")
    return tenant_request(tenant, run_key=f"score-after-{run.run_id}")


def table_checks_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """The table checks of every connected tenant, on the reconciliation's cron."""
    return dg.schedule(
        name="tenant_table_checks_schedule",
        job=table_checks_job,
        cron_schedule=checked_cron(settings, RECONCILE_CRON_VARIABLE, DEFAULT_RECONCILE_CRON),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="quarantine_share and freshness of every connected tenant (cron: "
        "GTM_RECONCILE_CRON).",
    )(reconciliation_tick)


def definitions(settings: Settings) -> dg.Definitions:
    """The automation domain: the jobs, the sensors and the schedules that start them, timed by
    `settings`."""
    return dg.Definitions(
        jobs=[sync_job, scores_writeback_job, reconciliation_job, table_checks_job],
        sensors=[sync_sensor(settings), score_after_sync, reconcile_after_full_sync],
        schedules=[
            sync_schedule(settings),
            reconciliation_schedule(settings),
            table_checks_schedule(settings),
        ],
    )
