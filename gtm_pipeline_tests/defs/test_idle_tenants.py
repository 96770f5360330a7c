"""An idle tenant costs the sync sensor a few API calls, not a run: the sensor asks Salesforce
whether anything changed since the tenant's cursors (one `LIMIT 1` query per entity at most,
deletions included) and requests a run only for a tenant with changes or an unfinished run."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from gtm_pipeline.cli.instance import on_instance
from gtm_pipeline.config import Settings
from gtm_pipeline.defs.assets import sync_assets
from gtm_pipeline.defs.automation import sync_sensor
from gtm_pipeline.defs.partitions import salesforce_tenants
from gtm_pipeline.store import mark_run_started
from gtm_pipeline.sync.changes import sync_reason
from gtm_pipeline.sync.entities import PERSONS, SYNC_ORDER
from gtm_pipeline_tests.support.defs import TENANT

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

tenant_sync_sensor = sync_sensor(Settings({}))


@pytest.fixture()
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(salesforce_tenants.name, [TENANT])
        yield instance


@pytest.fixture()
def synced(instance, resources):
    """The tenant after a successful sync of every entity."""
    with on_instance(instance):
        result = dg.materialize(
            sync_assets(), instance=instance, partition_key=TENANT, resources=resources
        )
    assert result.success
    return resources


def checks(emulator) -> int:
    return emulator.control.stats()["calls"]["queryAll"]


def tick(instance, resources) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, resources=resources)
    return tenant_sync_sensor(context)


def test_an_idle_tenant_gets_no_run_for_one_call_per_entity(instance, synced, emulator):
    before = checks(emulator)
    result = tick(instance, synced)
    assert result.run_requests == []
    assert checks(emulator) - before == len(SYNC_ORDER)


def test_a_changed_record_requests_the_tenants_run(instance, synced, emulator):
    contact = next(r for r in emulator.control.truth("Contact") if not r["IsDeleted"])
    emulator.control.mutate(
        [{"op": "update", "object": "Contact", "id": contact["Id"], "fields": {"Title": "New"}}]
    )
    before = checks(emulator)
    result = tick(instance, synced)
    assert [r.partition_key for r in result.run_requests] == [TENANT]
    assert checks(emulator) - before == 2  # accounts unchanged, contacts changed: stop there


def test_a_deletion_is_a_change_too(instance, synced, emulator, engine):
    opportunity = next(r for r in emulator.control.truth("Opportunity") if not r["IsDeleted"])
    emulator.control.mutate([{"op": "delete", "object": "Opportunity", "id": opportunity["Id"]}])
    reason = sync_reason(engine, TENANT, lambda: synced["salesforce"].client(engine, TENANT))
    assert reason is not None and reason.startswith("opportunities: changed")


def test_an_unfinished_run_requests_a_run_without_asking_salesforce(
    instance, synced, emulator, engine
):
    with engine.begin() as conn:  # a run that started after the last success and never ended
        mark_run_started(conn, TENANT, PERSONS.name, "incremental", datetime.now(UTC))
    before = checks(emulator)
    reason = sync_reason(engine, TENANT, lambda: pytest.fail("Salesforce asked"))
    assert reason == "contacts: the last run did not finish"
    assert [r.partition_key for r in tick(instance, synced).run_requests] == [TENANT]
    assert checks(emulator) == before


def test_a_failed_check_requests_the_run_that_will_report_it(instance, synced, emulator, engine):
    emulator.control.configure(daily_api_limit=1)  # every call refused: the budget is spent
    result = tick(instance, synced)
    assert [r.partition_key for r in result.run_requests] == [TENANT]


def test_a_tenant_never_synced_is_requested_at_once(instance, resources, tenants, emulator):
    before = checks(emulator)
    result = tick(instance, resources)
    assert sorted(r.partition_key for r in result.run_requests) == ["acme", "globex"]
    assert checks(emulator) == before  # the store alone says no run finished
