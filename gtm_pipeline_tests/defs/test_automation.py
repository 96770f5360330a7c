"""The sensor and schedule: partitions for connected tenants, one run per tenant at a time."""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner
from dagster._core.test_utils import create_run_for_test

from benchmarks import temporary_postgres_database
from gtm_pipeline.cli import main
from gtm_pipeline.cli.sync import run_sync
from gtm_pipeline.config import Settings
from gtm_pipeline.defs.automation import sync_schedule, sync_sensor
from gtm_pipeline.defs.partitions import TENANT_TAG, salesforce_tenants
from gtm_pipeline.defs.resources import WarehouseResource
from gtm_pipeline.sync.entities import SYNC_ORDER
from gtm_pipeline_tests.support.defs import TENANT

tenant_sync_sensor = sync_sensor(Settings({}))
tenant_sync_schedule = sync_schedule(Settings({}))


def test_sensor_adds_partitions_and_requests_one_run_per_connected_tenant(tenants, resources):
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources)
        result = tenant_sync_sensor(context)
        [add] = result.dynamic_partitions_requests
        assert add.partitions_def_name == salesforce_tenants.name
        assert sorted(add.partition_keys) == ["acme", "globex"]
        requests = {r.partition_key: r for r in result.run_requests}
        assert sorted(requests) == ["acme", "globex"]
        assert all(r.tags[TENANT_TAG] == key for key, r in requests.items())


def test_sensor_skips_a_tenant_whose_run_is_in_progress(tenants, resources):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(salesforce_tenants.name, ["acme", "globex"])
        create_run_for_test(instance, status=dg.DagsterRunStatus.STARTED, tags={TENANT_TAG: "acme"})
        context = dg.build_sensor_context(instance=instance, resources=resources)
        result = tenant_sync_sensor(context)
        assert [r.partition_key for r in result.run_requests] == ["globex"]
        assert result.dynamic_partitions_requests == []


def test_schedule_requests_the_same_runs(tenants, database_url):
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, resources={"warehouse": WarehouseResource(database_url=database_url)}
        )
        requests = tenant_sync_schedule(context)
        assert sorted(r.partition_key for r in requests) == ["acme", "globex"]
        assert set(instance.get_dynamic_partitions(salesforce_tenants.name)) == {"acme", "globex"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_dagster_instance_on_postgresql_storage(resources):
    with temporary_postgres_database(prefix="gtm_dagster") as url:
        postgres_url = url.replace("postgresql+psycopg://", "postgresql+psycopg2://")
        overrides = {"storage": {"postgres": {"postgres_url": postgres_url}}}
        with dg.instance_for_test(overrides=overrides) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            run = run_sync(TENANT, instance=instance, resources=resources)
            assert run.success, run.failure
            assert set(run.summary) == {e.asset_name for e in SYNC_ORDER}
            records = instance.get_run_records(dg.RunsFilter(tags={TENANT_TAG: TENANT}))
            assert [r.dagster_run.run_id for r in records] == [run.run_id]


def test_sync_command_reports_an_unconnected_tenant_in_one_line(gtm_home, monkeypatch, engine):
    monkeypatch.setenv("DATABASE_URL", str(engine.url.render_as_string(hide_password=False)))
    monkeypatch.setenv("DAGSTER_HOME", gtm_home + "/dagster")
    for name, value in {
        "SALESFORCE_CLIENT_ID": "id",
        "SALESFORCE_CLIENT_SECRET": "secret",
        "CONNECTOR_ENCRYPTION_KEY": "ab" * 32,
    }.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["sync", "--tenant", "nobody"])

    assert result.exit_code == 1
    assert "nobody" in result.output and "connect" in result.output
