"""The emulator's per-record update counter, which the writeback crash test relies on."""

from __future__ import annotations

from gtm_pipeline.emulator.ids import make_id
from gtm_pipeline_tests.support.sync import client_for
from gtm_pipeline_tests.sync.test_crash import live_ids


def test_only_applied_api_updates_are_counted(emulator):
    client = client_for(emulator)
    a, b, locked = live_ids(emulator, "Contact")[:3]
    emulator.control.mutate(
        [
            {"op": "update", "object": "Contact", "id": a, "fields": {"Title": "By hand"}},
            {"op": "lock", "object": "Contact", "id": locked, "attempts": 1},
        ]
    )
    assert emulator.control.update_counts("Contact") == {}

    def record(record_id: str) -> dict:
        return {"attributes": {"type": "Contact"}, "id": record_id, "Tier__c": "A"}

    missing = make_id("003", 900_000)
    results = client.update_collection([record(a), record(b), record(locked), record(missing)])
    assert [r["success"] for r in results] == [True, True, False, False]
    client.update_collection([record(a)])
    client.update_collection([record(b), record(missing)], all_or_none=True)  # rolled back
    assert emulator.control.update_counts("contact") == {a: 2, b: 1}
    assert emulator.control.update_counts("Account") == {}
