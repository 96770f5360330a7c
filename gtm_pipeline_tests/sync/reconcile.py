"""Compare the store with the emulator's ground truth, field by field."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from gtm_pipeline.emulator.testing import EmulatorHandle
from gtm_pipeline.store import CANONICAL_TABLES
from gtm_pipeline.store.quarantine import failures_for
from gtm_pipeline.sync.entities import Entity


def _text(value):
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _stamp(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


CHECKS = {
    "accounts": {"name": lambda r: _text(r["Name"]), "industry": lambda r: _text(r["Industry"])},
    "persons": {
        "email": lambda r: None if _text(r["Email"]) is None else _text(r["Email"]).lower(),
        "first_name": lambda r: _text(r["FirstName"]),
        "last_name": lambda r: _text(r["LastName"]),
        "account_external_id": lambda r: r["AccountId"],
    },
    "opportunities": {
        "name": lambda r: _text(r["Name"]),
        "stage": lambda r: _text(r["StageName"]),
        "account_external_id": lambda r: r["AccountId"],
    },
}


def reconcile(engine: sa.Engine, tenant_id: str, emulator: EmulatorHandle, entity: Entity) -> dict:
    """Assert the store matches the truth for one entity; return counts for further checks.

    Every live record is either stored live with its current values and stamp, or quarantined;
    every record in the recycle bin that the store knows is flagged deleted; nothing else is live.
    """
    truth = list(emulator.control.truth(entity.sf_object))
    live = {r["Id"]: r for r in truth if not r["IsDeleted"]}
    deleted = {r["Id"]: r for r in truth if r["IsDeleted"]}
    table = CANONICAL_TABLES[entity.name]
    with engine.connect() as conn:
        rows = {
            r.external_id: r
            for r in conn.execute(sa.select(table).where(table.c.tenant_id == tenant_id))
        }
        quarantined = {f["external_id"] for f in failures_for(conn, tenant_id, entity.name)}
    stored_live = {i for i, r in rows.items() if not r.is_deleted}
    assert stored_live | quarantined >= set(live), "live records missing from store and quarantine"
    assert stored_live <= set(live), (
        f"store has live rows Salesforce does not: {stored_live - set(live)}"
    )
    # A quarantined record may still have an earlier, clean version stored: the last good one.
    for external_id in stored_live - quarantined:
        record, row = live[external_id], rows[external_id]
        assert row.system_modstamp == _stamp(record["SystemModstamp"]), external_id
        for column, expected in CHECKS[entity.name].items():
            assert getattr(row, column) == expected(record), (external_id, column)
    for external_id in set(deleted) & set(rows):
        assert rows[external_id].is_deleted, f"{external_id} deleted in Salesforce, live in store"
    return {
        "live": len(live),
        "stored": len(stored_live),
        "quarantined": len(quarantined & set(live)),
        "deleted": len(deleted),
    }
