"""A stored writeback mapping that breaks the writeback rule blocks the Dagster writeback run
before its first request, naming the field and the reason, and the run is not retried."""

from __future__ import annotations

import dagster as dg
import pytest

from gtm_pipeline.cli.instance import on_instance
from gtm_pipeline.cli.writeback import run_writeback
from gtm_pipeline.defs.assets import sync_assets
from gtm_pipeline.defs.partitions import salesforce_tenants
from gtm_pipeline.writeback.mapping import save_writeback_map
from gtm_pipeline_tests.support.defs import TENANT


@pytest.fixture()
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(salesforce_tenants.name, [TENANT])
        yield instance


def test_a_map_that_breaks_the_rule_blocks_the_writeback_with_its_reason(
    instance, resources, emulator, engine
):
    with on_instance(instance):
        synced = dg.materialize(
            sync_assets(), instance=instance, partition_key=TENANT, resources=resources
        )
    assert synced.success
    with engine.begin() as conn:  # saved without the rule, as an older version could have
        save_writeback_map(conn, TENANT, "person", {"fit_score": "Legacy_Score__c"})
    before = emulator.control.stats()["calls"].get("composite", 0)

    run = run_writeback(TENANT, instance=instance, resources=resources)

    assert not run.success
    assert "Writeback blocked for tenant acme" in run.failure
    assert "person: Contact.Legacy_Score__c keeps 0 decimal place(s)" in run.failure
    assert emulator.control.stats()["calls"].get("composite", 0) == before  # nothing sent
    assert run.results == []
    retries = [
        e
        for e in instance.all_logs(run.run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"
    ]
    assert not retries
