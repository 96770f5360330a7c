"""What the writeback shows of a refused record (the fields Salesforce blamed) and of the org's
API limits, in the run's metadata and on the command line."""

from __future__ import annotations

import dagster as dg
import pytest

from gtm_pipeline.cli.instance import on_instance
from gtm_pipeline.cli.writeback import reported_results, results_table, run_writeback
from gtm_pipeline.defs.partitions import salesforce_tenants
from gtm_pipeline.defs.writeback_assets import (
    WRITEBACK_KEY,
    failures_as_table,
    results_as_table,
)
from gtm_pipeline.writeback import WritebackResult
from gtm_pipeline_tests.defs.test_writeback_assets import sync
from gtm_pipeline_tests.support.defs import TENANT


def _refused(fields: list[str]) -> WritebackResult:
    return WritebackResult(
        "person",
        total=2,
        success=1,
        failed=1,
        errors=[
            {
                "entity_id": "003000000000001AAA",
                "code": "STRING_TOO_LONG",
                "error": "STRING_TOO_LONG: data value too large",
                "fields": fields,
            }
        ],
    )


def test_the_failure_table_names_the_fields_salesforce_blamed() -> None:
    table = failures_as_table([_refused(["Tier__c", "Fit|Score__c"])])
    assert [c.name for c in table.schema.columns] == [
        "entity_type", "record", "code", "fields", "error",
    ]  # fmt: skip
    [row] = table.records
    assert row.data == {
        "entity_type": "person",
        "record": "003000000000001AAA",
        "code": "STRING_TOO_LONG",
        "fields": "Tier__c, Fit|Score__c",
        "error": "STRING_TOO_LONG: data value too large",
    }


def test_a_failure_without_fields_leaves_the_cell_empty() -> None:
    [row] = failures_as_table([_refused([])]).records
    assert row.data["fields"] == ""


def test_the_runs_tables_give_back_each_result_with_its_failures() -> None:
    refused = _refused(["Tier__c"])
    metadata = {"results": results_as_table([refused]), "failures": failures_as_table([refused])}
    [result] = reported_results(metadata)
    assert result == {**refused.as_dict(), "errors": [{**refused.errors[0]}]}


def test_the_command_line_table_names_the_fields() -> None:
    table = results_table([_refused(["Tier__c"]).as_dict()])
    assert ("003000000000001AAA: STRING_TOO_LONG: data value too large (fields: Tier__c)") in table
    assert "(fields:" not in results_table([_refused([]).as_dict()])


@pytest.fixture()
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(salesforce_tenants.name, [TENANT])
        yield instance


def test_the_run_reports_what_salesforce_said_of_its_limits(instance, resources, emulator):
    emulator.control.configure(daily_api_limit=100_000, daily_api_overage=10)
    sync(instance, resources)
    run = run_writeback(TENANT, instance=instance, resources=resources)
    assert run.success, run.failure
    with on_instance(instance):
        event = instance.get_latest_materialization_event(WRITEBACK_KEY)
    assert event is not None and event.asset_materialization is not None
    reported = event.asset_materialization.metadata["salesforce_limit_info"].value
    used = emulator.control.stats()["api_usage"]["used"]
    assert reported == {
        "api_usage": {"used": used, "total": 100_000},
        "api_bursts": {"used": 0, "total": 750},
        "per_app_api_usage": [],
    }
