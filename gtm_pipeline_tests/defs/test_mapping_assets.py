"""A tenant's stored mappings through the Dagster sync assets: warnings and refused mappings."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from gtm_pipeline.cli.instance import on_instance
from gtm_pipeline.defs.assets import asset_key, sync_assets
from gtm_pipeline.defs.partitions import salesforce_tenants
from gtm_pipeline.store import persons
from gtm_pipeline.sync.entities import ACCOUNTS, PERSONS, FieldMapping
from gtm_pipeline.sync.mapping import save_mappings
from gtm_pipeline_tests.support.defs import TENANT

CONTACTS = asset_key(PERSONS)


@pytest.fixture()
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(salesforce_tenants.name, [TENANT])
        yield instance


def run(instance, resources):
    with on_instance(instance):
        return dg.materialize(
            sync_assets(),
            selection=[asset_key(ACCOUNTS), asset_key(PERSONS)],
            instance=instance,
            partition_key=TENANT,
            resources=resources,
            raise_on_error=False,
            tags={"gtm/tenant": TENANT},
        )


def test_duplicate_targets_show_in_metadata_and_the_run_log(instance, resources, engine):
    with engine.begin() as conn:
        save_mappings(
            conn, TENANT, "persons",
            [FieldMapping("custom_fields.mail", "MailingAddress"),
             FieldMapping("custom_fields.mail_city", "MailingCity")],
        )  # fmt: skip
    result = run(instance, resources)
    assert result.success
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == CONTACTS]
    shown = event.materialization.metadata["mapping_warnings"].value
    assert "'custom_fields.mail_city'" in shown and "'MailingCity'" in shown and "wins" in shown
    logged = [
        e.message
        for e in instance.all_logs(result.run_id)
        if e.level == 30 and "field mapping" in (e.message or "")
    ]
    assert len(logged) == 1 and "custom_fields.mail_city" in logged[0]
    with engine.connect() as conn:
        stored = conn.execute(sa.select(persons.c.custom_fields)).scalars().all()
    keys = {"mail_street", "mail_city", "mail_state", "mail_postal_code", "mail_country"}
    assert stored and all(set(c) == keys for c in stored)
    assert any(c["mail_city"] for c in stored) and any(c["mail_postal_code"] for c in stored)


def test_a_mapping_the_org_does_not_have_stops_the_asset_without_retry(instance, resources, engine):
    with engine.begin() as conn:
        save_mappings(conn, TENANT, "persons", [FieldMapping("custom_fields.x", "Gone__c")])
    result = run(instance, resources)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1 and "Gone__c" in str(failures[0].step_failure_data.error.message)
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
