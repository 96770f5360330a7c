"""The `reconciliation` asset checks through Dagster: one tenant partition, their own job, the
daily schedule and the sensor after full syncs, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.test_utils import create_run_for_test

from gtm_pipeline.cli.instance import on_instance
from gtm_pipeline.cli.reconcile import run_reconciliation
from gtm_pipeline.cli.sync import run_sync
from gtm_pipeline.config import ConfigError, Settings
from gtm_pipeline.definitions import defs
from gtm_pipeline.defs.assets import asset_key, sync_assets, sync_run_config
from gtm_pipeline.defs.automation import (
    DEFAULT_CRON,
    DEFAULT_RECONCILE_CRON,
    RECONCILE_CRON_VARIABLE,
    SYNC_CRON_VARIABLE,
    checked_cron,
    reconcile_after_full_sync,
    reconciliation_job,
    reconciliation_schedule,
    sync_job,
)
from gtm_pipeline.defs.partitions import TENANT_TAG, salesforce_tenants
from gtm_pipeline.defs.reconciliation import (
    RECONCILIATION_CHECK,
    reconciliation_check_key,
    reconciliation_check_keys,
    reconciliation_checks,
)
from gtm_pipeline.defs.resources import WarehouseResource
from gtm_pipeline.defs.table_checks import table_checks
from gtm_pipeline.store import CANONICAL_TABLES
from gtm_pipeline.sync.entities import PERSONS, SYNC_ORDER
from gtm_pipeline.sync.quality import STAGES
from gtm_pipeline_tests.support.defs import TENANT, after_success

REPO = Path(__file__).resolve().parents[2]
CONTACTS_CHECK = reconciliation_check_key(PERSONS)
CLASSES = ("missing", "stale", "ghosts", "purged", "wrongly_deleted")


@pytest.fixture()
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(salesforce_tenants.name, [TENANT])
        yield instance


def counts(metadata: dict, when: str) -> dict[str, int]:
    return {c: metadata[f"{when}_{c}"] for c in CLASSES}


def nothing() -> dict[str, int]:
    return dict.fromkeys(CLASSES, 0)


def latest(instance: dg.DagsterInstance, key: dg.AssetCheckKey):
    [record] = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
    return record


def persons(engine: sa.Engine) -> dict[str, sa.Row]:
    table = CANONICAL_TABLES[PERSONS.name]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c.tenant_id == TENANT))
        return {r.external_id: r for r in rows}


def clean_live_contacts(emulator, engine: sa.Engine, n: int) -> list[str]:
    """Contacts without dirt that the store holds live and unmarked."""
    stored = {i for i, r in persons(engine).items() if not r.is_deleted and not r.duplicate_of}
    truth = emulator.control.truth("Contact")
    clean = sorted(r["Id"] for r in truth if not r["IsDeleted"] and not r.get("_dirty"))
    return [i for i in clean if i in stored][:n]


def sync(instance, resources):
    run = run_sync(TENANT, instance=instance, resources=resources, reconcile=False)
    assert run.success, run.failure
    return run


def drift_a_purge_and_a_late_commit(emulator, engine, instance, resources) -> tuple[str, str]:
    """A contact deleted and purged between two syncs, and a commit visible later than the
    lookback: the incremental syncs miss both."""
    sync(instance, resources)
    purged, anchor, late = clean_live_contacts(emulator, engine, 3)
    emulator.control.mutate(
        [
            {"op": "delete", "object": "Contact", "id": purged},
            {"op": "purge", "object": "Contact", "id": purged},
            # Moves the cursor to "now", as a live org's would be.
            {"op": "update", "object": "Contact", "id": anchor, "fields": {"Title": "Now"}},
        ]
    )
    sync(instance, resources)
    emulator.control.mutate(
        {
            "op": "late_commit",
            "object": "Contact",
            "id": late,
            "fields": {"LastName": "Outside"},
            "age_seconds": 1200,
        }
    )
    sync(instance, resources)
    rows = persons(engine)
    assert not rows[purged].is_deleted and rows[late].last_name != "Outside", "both missed"
    return purged, late


# -- definitions ---------------------------------------------------------------------------------


@pytest.fixture()
def code_location():
    """The code location's definitions, loaded on a live instance."""
    with dg.instance_for_test() as instance, on_instance(instance):
        yield defs


def test_one_partitioned_check_per_sync_asset_in_its_own_partitioned_job(code_location):
    checks = {key for c in reconciliation_checks() for key in c.check_keys}
    assert checks == {dg.AssetCheckKey(asset_key(e), RECONCILIATION_CHECK) for e in SYNC_ORDER}
    for check in reconciliation_checks():
        [spec] = check.check_specs
        assert spec.partitions_def == salesforce_tenants
    job = code_location.resolve_job_def(reconciliation_job.name)
    assert job.partitions_def == salesforce_tenants
    assert set(job.asset_layer.asset_graph.asset_check_keys) == set(reconciliation_check_keys())
    assert not job.asset_layer.executable_asset_keys
    implicit = code_location.resolve_implicit_global_asset_job_def().asset_layer.asset_graph
    assert set(reconciliation_check_keys()) <= set(implicit.asset_check_keys), "runnable alone"


def test_the_sync_job_leaves_the_reconciliation_checks_out(code_location):
    job = code_location.resolve_job_def(sync_job.name)
    keys = set(job.asset_layer.asset_graph.asset_check_keys)
    assert {k.name for k in keys} == set(STAGES)
    assert not keys & set(reconciliation_check_keys())


tenant_reconciliation_schedule = reconciliation_schedule(Settings({}))


def reconcile_cron(environ: dict[str, str]) -> str:
    return checked_cron(Settings(environ), RECONCILE_CRON_VARIABLE, DEFAULT_RECONCILE_CRON)


def test_schedule_and_sensor_are_registered_and_on_by_default(code_location):
    schedule = code_location.resolve_schedule_def(tenant_reconciliation_schedule.name)
    sensor = code_location.resolve_sensor_def(reconcile_after_full_sync.name)
    assert schedule.job_name == reconciliation_job.name
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert [t.job_name for t in sensor.targets] == [reconciliation_job.name]


# -- the check on its own, for one partition ------------------------------------------------------


def test_clean_after_a_full_sync_passes(instance, resources):
    run = run_sync(TENANT, full=True, instance=instance, resources=resources)
    assert run.success, run.failure
    reconciliation = run.reconciliation
    assert reconciliation is not None and reconciliation.ok, reconciliation
    assert reconciliation.run_id != run.run_id
    assert set(reconciliation.results) == {e.asset_name for e in SYNC_ORDER}
    for entity in SYNC_ORDER:
        record = latest(instance, reconciliation_check_key(entity))
        assert record.partition == TENANT
        assert record.run_id == reconciliation.run_id
        evaluation = record.evaluation
        assert evaluation.passed
        metadata = {k: v.value for k, v in evaluation.metadata.items()}
        assert metadata["outcome"] == "clean"
        assert counts(metadata, "before") == counts(metadata, "after") == nothing()
        assert metadata["salesforce_records"] > 0 and metadata["listing"] == "rest"
        assert metadata["api_calls"] >= 1 and metadata["stopped"] == "none"
        assert metadata["records_reread"] == metadata["records_flagged_deleted"] == 0
    tags = instance.get_run_by_id(reconciliation.run_id).tags
    assert tags[TENANT_TAG] == TENANT and tags["dagster/partition"] == TENANT
    assert run_sync(TENANT, instance=instance, resources=resources).reconciliation is None


def test_a_purge_and_a_late_commit_are_repaired_with_a_warning(
    instance, resources, emulator, engine
):
    purged, late = drift_a_purge_and_a_late_commit(emulator, engine, instance, resources)
    run = run_reconciliation(TENANT, instance=instance, resources=resources, entities=[PERSONS])
    assert run.success and run.ok, run.failure
    assert set(run.results) == {"contacts"}, "the contacts check alone"
    evaluation = latest(instance, CONTACTS_CHECK).evaluation
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    metadata = run.results["contacts"]
    assert metadata["outcome"] == "repaired"
    assert counts(metadata, "before") == {**nothing(), "stale": 1, "ghosts": 1, "purged": 1}
    assert counts(metadata, "after") == nothing()
    assert (metadata["records_reread"], metadata["records_flagged_deleted"]) == (1, 1)
    rows = persons(engine)
    assert (rows[purged].is_deleted, rows[purged].deleted_reason) == (True, "purged")
    assert rows[late].last_name == "Outside"

    again = run_reconciliation(TENANT, instance=instance, resources=resources)
    assert {r["outcome"] for r in again.results.values()} == {"clean"}
    assert latest(instance, CONTACTS_CHECK).evaluation.passed


def test_a_dry_run_warns_and_repairs_nothing(instance, resources, emulator, engine):
    purged, late = drift_a_purge_and_a_late_commit(emulator, engine, instance, resources)
    run = run_reconciliation(TENANT, dry_run=True, instance=instance, resources=resources)
    assert run.success and run.ok and run.found == ["contacts"], run
    evaluation = latest(instance, CONTACTS_CHECK).evaluation
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    metadata = run.results["contacts"]
    assert (metadata["outcome"], metadata["dry_run"]) == ("found", True)
    drift = {**nothing(), "stale": 1, "ghosts": 1, "purged": 1}
    assert counts(metadata, "before") == counts(metadata, "after") == drift
    assert metadata["records_reread"] == metadata["records_flagged_deleted"] == 0
    rows = persons(engine)
    assert not rows[purged].is_deleted and rows[late].last_name != "Outside"
    assert {run.results[e]["outcome"] for e in ("accounts", "opportunities")} == {"clean"}


def test_a_budget_spent_mid_repair_is_an_error_with_the_drift_left(
    instance, resources, emulator, engine
):
    sync(instance, resources)
    (changed,) = clean_live_contacts(emulator, engine, 1)
    emulator.control.mutate(
        {"op": "update", "object": "Contact", "id": changed, "fields": {"LastName": "Later"}}
    )
    dry = run_reconciliation(
        TENANT, dry_run=True, instance=instance, resources=resources, entities=[PERSONS]
    )
    listing_calls = dry.results["contacts"]["api_calls"]
    # Another tool spends the org's budget but for the listing: the re-read is refused.
    used = emulator.control.stats()["api_usage"]["used"]
    emulator.control.configure(daily_api_limit=used + listing_calls)

    run = run_reconciliation(TENANT, instance=instance, resources=resources, entities=[PERSONS])
    assert run.success, "the check itself ran: it reports the drift it could not repair"
    assert not run.ok and run.drifted == ["contacts"]
    evaluation = latest(instance, CONTACTS_CHECK).evaluation
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    metadata = run.results["contacts"]
    assert metadata["outcome"] == "drift_remains"
    assert counts(metadata, "before") == counts(metadata, "after") == {**nothing(), "stale": 1}
    assert metadata["records_reread"] == 0
    assert (
        "daily API calls" in metadata["stopped"] or "REQUEST_LIMIT_EXCEEDED" in metadata["stopped"]
    )
    assert "drift remains" in run.reason() and "contacts" in run.reason()
    assert persons(engine)[changed].last_name != "Later"


def test_a_budget_spent_before_the_listing_stops_cleanly_without_retry(
    instance, resources, emulator
):
    sync(instance, resources)
    emulator.control.configure(daily_api_limit=emulator.control.stats()["api_usage"]["used"])
    run = run_reconciliation(TENANT, instance=instance, resources=resources, entities=[PERSONS])
    assert not run.success and not run.results
    assert "REQUEST_LIMIT_EXCEEDED" in run.failure and "Nothing was repaired" in run.failure
    assert not instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)


# -- what starts it --------------------------------------------------------------------------------


def test_schedule_requests_one_reconciliation_per_connected_tenant(tenants, database_url):
    with dg.instance_for_test() as instance:
        # A tenant whose sync is running is not skipped: its reconciliation waits in the queue.
        create_run_for_test(instance, status=dg.DagsterRunStatus.STARTED, tags={TENANT_TAG: "acme"})
        context = dg.build_schedule_context(
            instance=instance, resources={"warehouse": WarehouseResource(database_url=database_url)}
        )
        requests = tenant_reconciliation_schedule(context)
        assert sorted(r.partition_key for r in requests) == ["acme", "globex"]
        assert all(r.tags[TENANT_TAG] == r.partition_key for r in requests)
        assert set(instance.get_dynamic_partitions(salesforce_tenants.name)) == {"acme", "globex"}
        for request in requests:
            assert resolved_tags(instance, request)["dagster/partition"] == request.partition_key


def test_schedule_crons_come_from_the_settings():
    assert tenant_reconciliation_schedule.cron_schedule == DEFAULT_RECONCILE_CRON == "0 4 * * *"
    assert reconcile_cron({}) == DEFAULT_RECONCILE_CRON
    assert reconcile_cron({"GTM_RECONCILE_CRON": " 30 2 * * 1-5 "}) == "30 2 * * 1-5"
    for bad in ("daily", "0 4 * *", "61 4 * * *", "0 0 31 2 *"):
        with pytest.raises(ConfigError, match="GTM_RECONCILE_CRON"):
            reconcile_cron({"GTM_RECONCILE_CRON": bad})
    with pytest.raises(ConfigError, match=SYNC_CRON_VARIABLE):
        checked_cron(Settings({SYNC_CRON_VARIABLE: "hourly"}), SYNC_CRON_VARIABLE, DEFAULT_CRON)


def _schedule_cron_in_a_new_process(value: str) -> subprocess.CompletedProcess:
    code = (
        "from gtm_pipeline.definitions import defs; "
        "print(defs.resolve_schedule_def('tenant_reconciliation_schedule').cron_schedule)"
    )
    env = {**os.environ, "GTM_RECONCILE_CRON": value}
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_schedule_reads_gtm_reconcile_cron_when_the_code_location_loads():
    loaded = _schedule_cron_in_a_new_process("15 3 * * 0")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip() == "15 3 * * 0"
    refused = _schedule_cron_in_a_new_process("every day")
    assert refused.returncode != 0
    assert "GTM_RECONCILE_CRON must be a five-field cron expression" in refused.stderr


def run_sync_job(instance, resources, *, full: bool = False):
    """The `salesforce_sync` job as the sensor and the schedule launch it."""
    config = sync_run_config(full=full)
    with on_instance(instance):
        job = dg.Definitions(
            assets=sync_assets(),
            asset_checks=[*reconciliation_checks(), *table_checks(900)],
            jobs=[sync_job],
            resources=resources,
        ).resolve_job_def(sync_job.name)
        result = job.execute_in_process(
            instance=instance, partition_key=TENANT, run_config=config, tags={TENANT_TAG: TENANT}
        )
    assert {e.check_name for e in result.get_asset_check_evaluations()} == set(STAGES)
    return result


def sensor_after(instance, result):
    return after_success(reconcile_after_full_sync, instance, result)


def resolved_tags(instance, request: dg.RunRequest) -> dict[str, str]:
    """The run's tags as the daemon resolves the request against the partitioned job."""
    with on_instance(instance):
        job = defs.resolve_job_def(reconciliation_job.name)
    resolved = request.with_resolved_tags_and_config(
        target_definition=job, dynamic_partitions_requests=[], dynamic_partitions_store=instance
    )
    return dict(resolved.tags)


def test_sensor_requests_reconciliation_after_a_full_sync_only(instance, resources):
    first = run_sync_job(instance, resources)  # no cursor yet: every entity read in full
    request = sensor_after(instance, first)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == TENANT and request.tags[TENANT_TAG] == TENANT
    assert request.run_key == f"reconcile-after-{first.run_id}"
    assert resolved_tags(instance, request)["dagster/partition"] == TENANT

    incremental = run_sync_job(instance, resources)
    assert sensor_after(instance, incremental) is None

    forced = run_sync_job(instance, resources, full=True)
    assert isinstance(sensor_after(instance, forced), dg.RunRequest)


def sensor_tick(instance, cursor: str | None) -> dg.SensorExecutionData:
    """One evaluation of the run-status sensor as the daemon makes it, from `cursor`."""
    with (
        on_instance(instance),
        dg.partition_loading_context(dynamic_partitions_store=instance),
        dg.build_sensor_context(
            instance=instance, cursor=cursor, repository_def=defs.get_repository_def()
        ) as context,
    ):
        return reconcile_after_full_sync.evaluate_tick(context)


# The sensor reads Dagster's instance alone: one store is enough.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_one_tick_passes_an_incremental_run_and_requests_the_full_one_behind_it(
    instance, resources
):
    """Dagster ends a run-status sensor's tick at the first run it returns a request or a skip
    reason for; an incremental run returns nothing, so it does not hold up the tick."""
    start = sensor_tick(instance, None)  # the first tick only sets the cursor
    assert not start.run_requests
    first = run_sync_job(instance, resources)  # no cursor yet: read in full
    run_sync_job(instance, resources)
    forced = run_sync_job(instance, resources, full=True)
    ticks = [sensor_tick(instance, start.cursor)]
    ticks.append(sensor_tick(instance, ticks[-1].cursor))
    ticks.append(sensor_tick(instance, ticks[-1].cursor))
    assert [[r.run_key for r in t.run_requests] for t in ticks] == [
        [f"reconcile-after-{first.run_id}"],
        [f"reconcile-after-{forced.run_id}"],
        [],
    ]
