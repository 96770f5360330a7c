"""The sync assets through Dagster's own execution: partitions, dependencies, metadata, checks."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import pytest

from gtm_pipeline.cli.instance import on_instance
from gtm_pipeline.defs.assets import (
    SYNC_RETRY_POLICY,
    asset_key,
    sync_assets,
    sync_objects_asset,
    sync_run_config,
)
from gtm_pipeline.defs.partitions import salesforce_tenants
from gtm_pipeline.sync.entities import LEADS, OPPORTUNITIES, SYNC_ORDER, FieldMapping
from gtm_pipeline.sync.mapping import save_mappings
from gtm_pipeline.sync.quality import STAGES
from gtm_pipeline_tests.support.defs import TENANT
from gtm_pipeline_tests.sync.reconcile import reconcile

KEYS = [asset_key(e) for e in SYNC_ORDER]


def run(instance, resources, *, config=None, raise_on_error=True, assets=None):
    with on_instance(instance):
        return dg.materialize(
            assets or sync_assets(),
            instance=instance,
            partition_key=TENANT,
            resources=resources,
            run_config=config,
            raise_on_error=raise_on_error,
            tags={"gtm/tenant": TENANT},
        )


@pytest.fixture()
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(salesforce_tenants.name, [TENANT])
        yield instance


def metadata(result, key) -> dict:
    [materialization] = [m for m in result.get_asset_materialization_events() if m.asset_key == key]
    return {k: v.value for k, v in materialization.materialization.metadata.items()}


def test_asset_keys_partitions_and_dependencies():
    [objects] = sync_assets()
    assert sorted(objects.keys) == sorted(KEYS)
    assert objects.can_subset and objects.partitions_def == salesforce_tenants
    for key in KEYS:
        assert objects.specs_by_key[key].partitions_def == salesforce_tenants
        assert {c.name for c in objects.check_specs if c.asset_key == key} == set(STAGES)
    accounts, contacts, leads, opportunities, tasks, events = KEYS
    for scored in (accounts, contacts, leads, opportunities):
        assert objects.asset_deps[scored] == set()  # read at once
    # Activities point at accounts, persons and opportunities: they come after all four.
    assert objects.asset_deps[tasks] == {accounts, contacts, leads, opportunities}
    assert objects.asset_deps[events] == {accounts, contacts, leads, opportunities}


def test_full_then_incremental_materialization(instance, resources, emulator, engine):
    first = run(instance, resources)
    assert first.success
    for entity, key in zip(SYNC_ORDER, KEYS, strict=True):
        meta = metadata(first, key)
        assert meta["mode"] == "full"
        counts = reconcile(engine, TENANT, emulator, entity)
        assert meta["dagster/row_count"] == counts["stored"]
        assert meta["rows_read"] >= counts["live"]
        assert meta["cursor_before"] == "none" and meta["cursor_after"] != "none"
        checks = [e for e in first.get_asset_check_evaluations() if e.asset_key == key]
        assert {c.check_name for c in checks} == set(STAGES)
    second = run(instance, resources)
    for key in KEYS:
        meta = metadata(second, key)
        assert meta["mode"] == "incremental"
        assert meta["api_calls"] == 2
        assert meta["rows_read"] == 0 or meta["cursor_before"] != "none"


def test_full_flag_in_run_config_forces_a_full_read(instance, resources):
    run(instance, resources)
    again = run(instance, resources, config=sync_run_config(full=True))
    assert all(metadata(again, key)["mode"] == "full" for key in KEYS)


def test_a_run_may_read_its_tenant_serially(instance, resources):
    serial = run(instance, resources, config=sync_run_config(full=True, parallel_reads=1))
    assert all(metadata(serial, key)["parallel_slices"] == 0 for key in KEYS)


def test_exhausted_budget_stops_cleanly_without_retry(instance, resources, emulator):
    emulator.control.configure(daily_api_limit=3)
    result = run(instance, resources, raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures
    message = failures[0].step_failure_data.error.message
    assert "REQUEST_LIMIT_EXCEEDED" in message or "daily API" in message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_an_object_the_user_cannot_read_does_not_stop_the_chain(instance, resources, emulator):
    emulator.control.configure(unreadable_objects=["Lead"])
    result = run(instance, resources)
    assert result.success
    leads = metadata(result, asset_key(LEADS))
    assert "cannot read Lead" in leads["not_readable"] and leads["rows_read"] == 0
    after = metadata(result, asset_key(OPPORTUNITIES))  # downstream of leads, still synced
    assert after["not_readable"] == "no" and after["rows_loaded"] > 0


def test_a_retry_syncs_only_what_the_run_has_not_materialized(
    instance, resources, emulator, engine
):
    # Leads' describe (checked for the tenant's own mapping) fails through every try of the
    # client's first call: Leads fail with a retryable error, the activities wait for them.
    with engine.begin() as conn:
        save_mappings(conn, TENANT, "leads", [FieldMapping("custom_fields.source", "LeadSource")])
    emulator.control.add_fault(kind="status", status=503, times=5, path=r"/sobjects/Lead/describe")
    quick_retry = dg.RetryPolicy(max_retries=SYNC_RETRY_POLICY.max_retries, delay=0.1)
    result = run(instance, resources, assets=[sync_objects_asset(quick_retry)])
    assert result.success
    assert len([e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]) == 1
    materialized = Counter(e.asset_key for e in result.get_asset_materialization_events())
    assert materialized == dict.fromkeys(KEYS, 1), "each entity synced once, the rest on retry"


def test_an_unconnected_tenant_fails_at_once_without_retry(instance, resources):
    instance.add_dynamic_partitions(salesforce_tenants.name, ["nobody"])
    with on_instance(instance):
        result = dg.materialize(
            sync_assets(),
            instance=instance,
            partition_key="nobody",
            resources=resources,
            raise_on_error=False,
        )
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "nobody" in failure.step_failure_data.error.message
