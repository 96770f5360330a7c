"""An object the integration user may not read (a profile without Lead access): its entity reads
nothing and says why, the other entities sync as ever, reconciliation warns instead of failing,
the change check does not count it as a change, and once the object becomes readable its records
arrive with the next sync. On both
stores, against the emulator's `unreadable_objects` (INVALID_TYPE on queries, 404 on describe).
"""

from __future__ import annotations

import pytest

from gtm_pipeline.salesforce.errors import SalesforceApiError
from gtm_pipeline.store.quarantine import live_row_count
from gtm_pipeline.sync.access import unreadable_reason
from gtm_pipeline.sync.changes import sync_reason
from gtm_pipeline.sync.entities import LEADS, SYNC_ORDER
from gtm_pipeline.sync.reconciliation import reconcile_entity, severity
from gtm_pipeline.sync.runner import SyncOptions, sync_entity
from gtm_pipeline_tests.support.sync import client_for
from gtm_pipeline_tests.sync.reconcile import reconcile

TENANT = "acme"


def sync_all(emulator, engine) -> dict:
    client = client_for(emulator)
    return {e.name: sync_entity(client, engine, TENANT, e, SyncOptions()) for e in SYNC_ORDER}


def test_the_emulator_hides_an_unreadable_object_from_the_api(emulator):
    client = client_for(emulator)
    assert emulator.control.configure(unreadable_objects=["lead"])["unreadable_objects"] == ["Lead"]
    with pytest.raises(SalesforceApiError) as refused:
        next(client.query_pages("SELECT Id FROM Lead"))
    assert refused.value.error_code == "INVALID_TYPE"
    with pytest.raises(SalesforceApiError) as missing:
        client.describe("Lead")
    assert missing.value.status == 404
    assert next(client.query_pages("SELECT Id FROM Contact")).records  # the others still answer
    assert [r["Id"] for r in emulator.control.truth("Lead")]  # the control API still sees it
    with pytest.raises(Exception, match="unreadable_objects must list object names"):
        emulator.control.configure(unreadable_objects=["Campaign"])


def test_an_unreadable_object_reads_nothing_and_the_rest_syncs(emulator, engine):
    emulator.control.configure(unreadable_objects=["Lead"])
    stats = sync_all(emulator, engine)
    assert "cannot read Lead" in stats["leads"].not_readable
    assert (stats["leads"].rows_read, stats["leads"].mode) == (0, "full")
    for entity in SYNC_ORDER:
        if entity is not LEADS:
            assert stats[entity.name].not_readable is None
            reconcile(engine, TENANT, emulator, entity)
    with engine.connect() as conn:
        assert live_row_count(conn, TENANT, LEADS.name) == 0

    # Reconciliation has nothing to list: it says why and warns, it does not fail.
    checked = reconcile_entity(client_for(emulator), engine, TENANT, LEADS)
    assert (checked.outcome, severity(checked)) == ("not_readable", "WARN")
    assert "cannot read Lead" in checked.not_readable

    # Idle: the unreadable object is no change, so no run is asked for on every tick.
    assert sync_reason(engine, TENANT, lambda: client_for(emulator)) is None

    # Access granted: the change check sees the Leads, and the next sync stores them all.
    emulator.control.configure(unreadable_objects=[])
    assert sync_reason(engine, TENANT, lambda: client_for(emulator)).startswith("leads:")
    stats = sync_all(emulator, engine)
    assert stats["leads"].not_readable is None and stats["leads"].rows_loaded > 0
    for entity in SYNC_ORDER:
        reconcile(engine, TENANT, emulator, entity)


def test_a_query_refused_on_a_readable_object_is_not_called_unreadable(emulator):
    client = client_for(emulator)
    refused = SalesforceApiError(400, "INVALID_TYPE", "sObject type 'Lead' is not supported.")
    assert unreadable_reason(client, "Lead", refused) is None  # its describe answers
    other = SalesforceApiError(400, "INVALID_FIELD", "No such column 'Foo__c' on entity 'Lead'.")
    assert unreadable_reason(client, "Lead", other) is None
