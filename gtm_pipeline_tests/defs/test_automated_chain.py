"""A successful sync run of a tenant carries on to Salesforce by itself: the `score_after_sync`
sensor requests that tenant's scores and writeback, which run as the daemon would launch them,
and a failed ERROR quality check of the tenant stops the writeback before any request."""

from __future__ import annotations

import dagster as dg
import pytest

from gtm_pipeline.cli.instance import on_instance
from gtm_pipeline.defs.assets import sync_assets
from gtm_pipeline.defs.automation import score_after_sync, scores_writeback_job, sync_job
from gtm_pipeline.defs.partitions import TENANT_TAG, salesforce_tenants
from gtm_pipeline.defs.reconciliation import reconciliation_checks
from gtm_pipeline.defs.scoring_assets import scores_asset
from gtm_pipeline.defs.table_checks import table_checks
from gtm_pipeline.defs.writeback_assets import (
    PROGRESS_RESOURCE,
    progress_resource,
    score_writeback_asset,
)
from gtm_pipeline.store.scoring import read_scores
from gtm_pipeline_tests.support.defs import TENANT, after_success, with_error_rate

ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture()
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(salesforce_tenants.name, [TENANT])
        yield instance


def run_job(instance, resources, job: dg.UnresolvedAssetJobDefinition, tags: dict[str, str]):
    """`job` for the tenant, as the daemon launches it with a request's tags."""
    definitions = dg.Definitions(
        assets=[*sync_assets(), scores_asset, score_writeback_asset],
        asset_checks=[*reconciliation_checks(), *table_checks(900)],
        jobs=[job],
        resources={**resources, PROGRESS_RESOURCE: progress_resource()},
    )
    with on_instance(instance):
        return definitions.resolve_job_def(job.name).execute_in_process(
            instance=instance, partition_key=TENANT, tags=tags, raise_on_error=False
        )


def requested_after(instance, sync_run) -> dg.RunRequest | dg.SkipReason:
    return after_success(score_after_sync, instance, sync_run)


def composite_calls(emulator) -> int:
    return emulator.control.stats()["calls"]["composite"]


@ON_SQLITE
def test_a_synced_tenants_scores_reach_salesforce_without_a_click(
    instance, resources, emulator, engine
):
    synced = run_job(instance, resources, sync_job, {TENANT_TAG: TENANT})
    assert synced.success
    request = requested_after(instance, synced)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == TENANT and request.tags[TENANT_TAG] == TENANT
    assert request.run_key == f"score-after-{synced.run_id}"
    written = run_job(instance, resources, scores_writeback_job, request.tags)
    assert written.success
    with engine.connect() as conn:
        scores = read_scores(conn, TENANT, "person")
    truth = {r["Id"]: r.get("Fit_Score__c") for r in emulator.control.truth("Contact")}
    landed = [
        (truth[external_id], fit)
        for external_id, fit in zip(scores.external_id, scores.fit_score, strict=True)
        if external_id in truth
    ]
    assert len(landed) > 0
    assert all(written_fit == pytest.approx(fit) for written_fit, fit in landed)


@ON_SQLITE
def test_an_error_check_of_the_tenant_stops_the_automated_writeback(instance, resources, emulator):
    strict = with_error_rate(resources, 0)  # the org's dirty rows make every gate an ERROR
    synced = run_job(instance, strict, sync_job, {TENANT_TAG: TENANT})
    assert synced.success
    request = requested_after(instance, synced)
    before = composite_calls(emulator)
    blocked = run_job(instance, strict, scores_writeback_job, request.tags)
    assert not blocked.success
    failure = next(e for e in blocked.all_events if e.event_type_value == "STEP_FAILURE")
    assert "Writeback blocked" in failure.step_failure_data.error.message
    assert composite_calls(emulator) == before


@ON_SQLITE
def test_a_run_without_a_tenant_requests_nothing(instance, resources):
    synced = run_job(instance, resources, sync_job, {TENANT_TAG: TENANT})
    context = dg.build_run_status_sensor_context(
        sensor_name=score_after_sync.name,
        dagster_instance=instance,
        dagster_run=synced.dagster_run,
        dagster_event=synced.get_run_success_event(),
        partition_key=None,
    )
    assert score_after_sync(context) is None


def test_the_code_location_runs_the_chain_and_the_table_checks_by_default():
    from gtm_pipeline.definitions import defs

    sensor = defs.resolve_sensor_def(score_after_sync.name)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert [t.job_name for t in sensor.targets] == [scores_writeback_job.name]
    schedule = defs.resolve_schedule_def("tenant_table_checks_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "salesforce_table_checks"
    job = defs.resolve_job_def("salesforce_table_checks")
    names = {key.name for key in job.asset_layer.asset_graph.asset_check_keys}
    assert names == {"quarantine_share", "freshness"}


def test_the_sync_and_writeback_jobs_run_their_steps_in_the_runs_process():
    from gtm_pipeline.definitions import defs

    for name in ("salesforce_sync", "salesforce_scores_writeback"):
        assert defs.resolve_job_def(name).executor_def is dg.in_process_executor
