"""Every check belongs to a tenant partition: each tenant's history is its own, the writeback's
quality block reads the tenant's latest evaluations exactly, and the table checks (quarantine
share, freshness) run on their own for one tenant."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from gtm_pipeline.cli.instance import on_instance
from gtm_pipeline.defs.assets import asset_key, sync_assets
from gtm_pipeline.defs.partitions import salesforce_tenants
from gtm_pipeline.defs.table_checks import (
    FRESHNESS_CHECK,
    QUARANTINE_SHARE_CHECK,
    freshness_result,
    quarantine_share_result,
    table_check_keys,
    table_checks,
)
from gtm_pipeline.defs.writeback_assets import blocking_quality_checks, latest_evaluation
from gtm_pipeline.store import mark_run_succeeded
from gtm_pipeline.store.quarantine import entity_record_count, quarantined_record_count, twins_of
from gtm_pipeline.sync.entities import PERSONS, SYNC_ORDER
from gtm_pipeline.sync.quality import REQUIRED, STAGES
from gtm_pipeline_tests.support.defs import with_error_rate

ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
CONTACTS_REQUIRED = dg.AssetCheckKey(asset_key(PERSONS), REQUIRED)


@pytest.fixture()
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(salesforce_tenants.name, ["acme", "globex", "initech"])
        yield instance


def sync(instance, resources, tenant: str) -> dg.ExecuteInProcessResult:
    with on_instance(instance):
        result = dg.materialize(
            sync_assets(), instance=instance, partition_key=tenant, resources=resources
        )
    assert result.success
    return result


@ON_SQLITE
def test_each_tenants_gate_checks_are_its_own(instance, resources, tenants):
    """acme's sync judges any rejection an ERROR, globex's tolerates all: the same org's data,
    one tenant blocked, the other not, each evaluation stored under its tenant."""
    strict = sync(instance, with_error_rate(resources, 0), "acme")
    lenient = sync(instance, with_error_rate(resources, 1), "globex")
    for result, tenant in ((strict, "acme"), (lenient, "globex")):
        evaluations = result.get_asset_check_evaluations()
        assert {e.check_name for e in evaluations} == set(STAGES)
        assert {e.partition for e in evaluations} == {tenant}
    acme = latest_evaluation(instance, CONTACTS_REQUIRED, "acme")
    globex = latest_evaluation(instance, CONTACTS_REQUIRED, "globex")
    assert not acme.passed and acme.severity == dg.AssetCheckSeverity.ERROR
    assert not globex.passed and globex.severity == dg.AssetCheckSeverity.WARN
    assert latest_evaluation(instance, CONTACTS_REQUIRED, "initech") is None
    assert "salesforce/contacts:required_fields" in blocking_quality_checks(instance, "acme")
    assert blocking_quality_checks(instance, "globex") == []


def _store_evaluation(instance, tenant: str, passed: bool) -> None:
    """An evaluation of contacts' required_fields for `tenant`, as a run of its own stores it."""
    evaluation = dg.AssetCheckEvaluation(
        asset_key=CONTACTS_REQUIRED.asset_key,
        check_name=CONTACTS_REQUIRED.name,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        partition=tenant,
    )
    event = dg.DagsterEvent(
        event_type_value=dg.DagsterEventType.ASSET_CHECK_EVALUATION.value,
        job_name="salesforce_sync",
        event_specific_data=evaluation,
    )
    instance.event_log_storage.store_event(
        dg.EventLogEntry(
            error_info=None,
            level="INFO",
            user_message="",
            run_id=str(uuid.uuid4()),
            timestamp=time.time(),
            dagster_event=event,
        )
    )


def test_a_tenants_error_is_found_behind_any_number_of_other_tenants_runs(instance):
    """The block once scanned the latest 100 evaluations: 150 of another tenant hid an ERROR."""
    _store_evaluation(instance, "acme", passed=False)
    for _ in range(150):
        _store_evaluation(instance, "globex", passed=True)
    assert blocking_quality_checks(instance, "acme") == ["salesforce/contacts:required_fields"]
    assert blocking_quality_checks(instance, "globex") == []
    _store_evaluation(instance, "acme", passed=True)
    assert blocking_quality_checks(instance, "acme") == []


def test_quarantine_share_is_judged_against_the_error_rate():
    clean = quarantine_share_result(0, 0, 1000, threshold=0.05)
    assert clean.passed
    some = quarantine_share_result(30, 10, 1000, threshold=0.05)
    assert not some.passed and some.severity == dg.AssetCheckSeverity.WARN
    assert some.metadata["held_back_share"].value == 0.04
    many = quarantine_share_result(50, 1, 1000, threshold=0.05)
    assert not many.passed and many.severity == dg.AssetCheckSeverity.ERROR
    assert quarantine_share_result(0, 0, 0, threshold=0.05).passed  # an empty table


def test_freshness_allows_its_age_and_no_more():
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    limit = timedelta(minutes=45)
    assert freshness_result(now - limit, now, limit).passed
    stale = freshness_result(now - limit - timedelta(seconds=1), now, limit)
    assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
    assert stale.metadata["age_seconds"].value == 2701.0
    never = freshness_result(None, now, limit)
    assert not never.passed and never.severity == dg.AssetCheckSeverity.ERROR


def run_table_checks(instance, resources, tenant: str) -> dict:
    """The table checks alone, for one tenant partition, as the UI or the daily job runs them."""
    job = dg.define_asset_job(
        "table_checks",
        selection=dg.AssetSelection.checks(*table_check_keys()),
        config=dg.PartitionedConfig(
            partitions_def=salesforce_tenants, run_config_for_partition_key_fn=lambda _key: {}
        ),
    )
    definitions = dg.Definitions(
        assets=sync_assets(), asset_checks=table_checks(900), jobs=[job], resources=resources
    )
    with on_instance(instance):
        result = definitions.resolve_job_def("table_checks").execute_in_process(
            instance=instance, partition_key=tenant
        )
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert {e.partition for e in evaluations} == {tenant}
    assert not result.get_asset_materialization_events()  # checks only: nothing resynced
    return {(e.asset_key, e.check_name): e for e in evaluations}


@ON_SQLITE
def test_table_checks_run_on_their_own_for_one_tenant(instance, resources, tenants, engine):
    sync(instance, resources, "acme")
    checks = run_table_checks(instance, resources, "acme")
    assert len(checks) == 2 * len(SYNC_ORDER)
    for entity in SYNC_ORDER:
        share = checks[(asset_key(entity), QUARANTINE_SHARE_CHECK)]
        with engine.connect() as conn:
            quarantined = quarantined_record_count(conn, "acme", entity.name)
            twins, _ = twins_of(conn, "acme", entity.name, limit=0)
            records = entity_record_count(conn, "acme", entity.name)
        assert quarantined + twins > 0, "the emulator's org carries dirty rows and twins"
        assert share.metadata["quarantined"].value == quarantined
        assert share.metadata["email_twins"].value == twins
        assert share.metadata["records"].value == records
        assert not share.passed
        assert checks[(asset_key(entity), FRESHNESS_CHECK)].passed  # just synced
    globex = run_table_checks(instance, resources, "globex")  # never synced
    assert all(not e.passed for (_key, name), e in globex.items() if name == FRESHNESS_CHECK)


@ON_SQLITE
def test_freshness_fails_once_the_last_success_is_three_intervals_old(
    instance, resources, tenants, engine
):
    sync(instance, resources, "acme")
    old = datetime.now(UTC) - timedelta(seconds=3 * 900 + 60)
    with engine.begin() as conn:
        mark_run_succeeded(conn, "acme", PERSONS.name, at=old)
    checks = run_table_checks(instance, resources, "acme")
    stale = checks[(asset_key(PERSONS), FRESHNESS_CHECK)]
    assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
    others = [e for (key, name), e in checks.items() if name == FRESHNESS_CHECK and e is not stale]
    assert all(e.passed for e in others)
