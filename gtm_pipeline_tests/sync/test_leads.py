"""Leads into `persons` beside Contacts, on both stores, checked by the oracle (`reconcile.py`):
the Lead columns; a Lead converted between two syncs leaving the live set for its Contact;
email twins across Leads and Contacts (a Contact surviving); a survivor's twin promoted when it
goes; REST and Bulk alike.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from gtm_pipeline.emulator.testing import EmulatorHandle, running_emulator
from gtm_pipeline.store.quarantine import live_row_count
from gtm_pipeline.store.tables import persons
from gtm_pipeline.sync.entities import ACCOUNTS, LEADS, PERSONS
from gtm_pipeline.sync.runner import SyncOptions, sync_entity
from gtm_pipeline_tests.support.sync import client_for
from gtm_pipeline_tests.sync.reconcile import reconcile

TENANT = "acme"
COUNTS = {"Account": 30, "Contact": 450, "Opportunity": 20, "Lead": 600}
SMALL_PAGES = SyncOptions(batch_size=200)
PEOPLE = (PERSONS, LEADS)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@pytest.fixture()
def emulator(tmp_path) -> Iterator[EmulatorHandle]:
    with running_emulator(tmp_path / "emulator", counts=COUNTS, seed=31, dirty_ratio=0.05) as e:
        yield e


def sync_people(emulator, engine, options: SyncOptions = SMALL_PAGES) -> None:
    client = client_for(emulator)
    for entity in (ACCOUNTS, *PEOPLE):
        sync_entity(client, engine, TENANT, entity, options)


def reconciled(emulator, engine) -> dict[str, dict]:
    return {e.name: reconcile(engine, TENANT, emulator, e) for e in PEOPLE}


def row(engine, external_id: str) -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(persons).where(
                persons.c.tenant_id == TENANT, persons.c.external_id == external_id
            )
        ).one()


def live_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {e.name: live_row_count(conn, TENANT, e.name) for e in PEOPLE}


def test_a_full_sync_stores_leads_beside_contacts(emulator, engine):
    sync_people(emulator, engine)
    counts = reconciled(emulator, engine)
    leads = counts["leads"]
    assert leads["stored"] > 0 and leads["converted"] > 0 and leads["twins"] > 0
    assert live_counts(engine) == {"persons": counts["persons"]["stored"], "leads": leads["stored"]}
    converted = next(
        r for r in emulator.control.truth("Lead") if r["IsConverted"] and not r["IsDeleted"]
    )
    stored = row(engine, converted["Id"])
    assert (stored.source_object, stored.is_converted, stored.duplicate_of) == ("Lead", True, None)
    assert stored.converted_contact_external_id == converted["ConvertedContactId"]
    assert stored.converted_account_external_id == converted["ConvertedAccountId"]


def test_bulk_and_rest_store_the_same_leads(emulator, engine):
    sync_people(emulator, engine, SyncOptions(batch_size=200, bulk_threshold=1))
    reconciled(emulator, engine)
    with engine.connect() as conn:
        stats = conn.execute(
            sa.text("SELECT last_stats FROM sync_state WHERE entity = 'leads'")
        ).scalar_one()
    assert "bulk" in str(stats)


def open_lead(emulator, **fields) -> dict:
    """A live, unconverted Lead of the org with an email no other person holds."""
    emails = {}
    for sobject in ("Contact", "Lead"):
        for record in emulator.control.truth(sobject):
            email = (record.get("Email") or "").strip().lower()
            emails[email] = emails.get(email, 0) + 1
    return next(
        r
        for r in emulator.control.truth("Lead")
        if not (r["IsDeleted"] or r["IsConverted"])
        and r.get("Email")
        and emails[r["Email"].strip().lower()] == 1
        and r.get("LastName")
        and r.get("Company")
    )


def test_a_lead_converted_between_two_syncs_leaves_the_live_set_for_its_contact(emulator, engine):
    sync_people(emulator, engine)
    lead = open_lead(emulator)
    before = live_counts(engine)
    assert row(engine, lead["Id"]).duplicate_of is None

    (done,) = emulator.control.mutate([{"op": "convert", "object": "Lead", "id": lead["Id"]}])
    sync_people(emulator, engine)
    reconciled(emulator, engine)
    stored = row(engine, lead["Id"])
    assert (stored.is_converted, stored.is_deleted, stored.duplicate_of) == (True, False, None)
    assert stored.converted_contact_external_id == done["contact_id"]
    assert stored.converted_account_external_id == done["account_id"]
    contact = row(engine, done["contact_id"])
    assert (contact.source_object, contact.email, contact.duplicate_of) == (
        "Contact",
        stored.email,
        None,
    )
    assert live_counts(engine) == {"persons": before["persons"] + 1, "leads": before["leads"] - 1}


def test_a_contact_sharing_a_leads_email_survives_and_the_lead_follows_it(emulator, engine):
    sync_people(emulator, engine)
    lead = open_lead(emulator)
    contact = next(
        r for r in emulator.control.truth("Contact")
        if not r["IsDeleted"] and r.get("Email") and r.get("LastName")
    )  # fmt: skip
    email = lead["Email"].strip().lower()
    update = {"op": "update", "object": "Contact", "id": contact["Id"]}
    emulator.control.mutate([{**update, "fields": {"Email": email.upper()}}])
    sync_people(emulator, engine)
    reconciled(emulator, engine)
    assert row(engine, lead["Id"]).duplicate_of == contact["Id"]
    assert row(engine, contact["Id"]).duplicate_of is None

    # The Contact goes to the recycle bin: the Lead is the live person again, in the same sync.
    emulator.control.mutate([{"op": "delete", "object": "Contact", "id": contact["Id"]}])
    sync_people(emulator, engine)
    reconciled(emulator, engine)
    assert row(engine, lead["Id"]).duplicate_of is None

    # Back from the recycle bin, the Contact wins again.
    emulator.control.mutate([{"op": "undelete", "object": "Contact", "id": contact["Id"]}])
    sync_people(emulator, engine)
    reconciled(emulator, engine)
    assert row(engine, lead["Id"]).duplicate_of == contact["Id"]


def test_lead_twins_and_a_lead_changing_its_email(emulator, engine):
    sync_people(emulator, engine)
    first = open_lead(emulator)
    second = next(
        r for r in emulator.control.truth("Lead")
        if r["Id"] != first["Id"] and not (r["IsDeleted"] or r["IsConverted"]) and r.get("LastName")
    )  # fmt: skip
    update = {"op": "update", "object": "Lead", "id": second["Id"]}
    emulator.control.mutate([{**update, "fields": {"Email": first["Email"]}}])
    sync_people(emulator, engine)
    reconciled(emulator, engine)
    survivor = min(first["Id"], second["Id"])
    other = max(first["Id"], second["Id"])
    assert row(engine, other).duplicate_of == survivor

    emulator.control.mutate(
        [
            {
                "op": "update",
                "object": "Lead",
                "id": survivor,
                "fields": {"Email": "moved@example.org"},
            }
        ]
    )
    sync_people(emulator, engine)
    reconciled(emulator, engine)
    assert row(engine, other).duplicate_of is None
