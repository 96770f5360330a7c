"""Which person survives among email twins, straight on the store (both databases): a Contact
before a Lead whatever their Ids, then the smallest Id; converted Leads and deleted rows take no
part and carry no mark. (Salesforce's key prefixes, 003 before 00Q, make a Contact's Id the
smaller one in every real org, so only made-up Ids can tell the two rules apart.)"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gtm_pipeline.store import upsert_records
from gtm_pipeline.store.duplicates import refresh_duplicates, settle_all
from gtm_pipeline.store.quarantine import live_row_count
from gtm_pipeline.store.tables import persons
from gtm_pipeline_tests.support.store import T0


def _person(external_id: str, source: str, email: str = "a@x.io", **columns) -> dict:
    return {
        "tenant_id": "t1",
        "external_id": external_id,
        "email": email,
        "source_object": source,
        "is_deleted": False,
        "is_converted": False if source == "Lead" else None,
        "system_modstamp": T0,
        "synced_at": T0,
        **columns,
    }


def _marks(conn: sa.Connection) -> dict[str, str | None]:
    query = sa.select(persons.c.external_id, persons.c.duplicate_of)
    return {r.external_id: r.duplicate_of for r in conn.execute(query)}


@pytest.mark.parametrize("mark", [refresh_duplicates, settle_all], ids=["refresh", "settle"])
def test_a_contact_survives_over_leads_with_smaller_ids(engine, mark) -> None:
    rows = [
        _person("A-lead", "Lead"),
        _person("B-lead", "Lead"),
        _person("Z-contact", "Contact"),
        _person("Y-contact", "Contact"),
        _person("C-converted", "Lead", is_converted=True),
        _person("D-deleted", "Contact", is_deleted=True),
    ]
    with engine.begin() as conn:
        upsert_records(conn, persons, rows)
        if mark is refresh_duplicates:
            mark(conn, "t1", ["a@x.io"])
        else:
            mark(conn, "t1")
        assert _marks(conn) == {
            "A-lead": "Y-contact",
            "B-lead": "Y-contact",
            "Y-contact": None,
            "Z-contact": "Y-contact",
            "C-converted": None,
            "D-deleted": None,
        }
        assert live_row_count(conn, "t1", "persons") == 1
        assert live_row_count(conn, "t1", "leads") == 0


def test_without_a_contact_the_smallest_lead_survives_and_hands_over_when_converted(engine):
    with engine.begin() as conn:
        upsert_records(conn, persons, [_person("L2", "Lead"), _person("L1", "Lead")])
        refresh_duplicates(conn, "t1", ["a@x.io"])
        assert _marks(conn) == {"L1": None, "L2": "L1"}
        conn.execute(
            sa.update(persons).where(persons.c.external_id == "L1").values(is_converted=True)
        )
        refresh_duplicates(conn, "t1", ["a@x.io"])
        assert _marks(conn) == {"L1": None, "L2": None}
        assert live_row_count(conn, "t1", "leads") == 1
