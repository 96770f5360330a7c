"""Property: after any sequence of upserts each key holds its version with the greatest modstamp.

Ties go to the later write, matching the rule the sync relies on (`>=`), and the returned counts
match a plain-Python model of that rule. Some batches go through a writer that keeps its written
keys (a first full sync's: PostgreSQL copies its new rows in), the others through plain upserts,
which that writer does not know of: the rule holds either way.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtm_pipeline.store import persons, prepare_upsert, write_upsert
from gtm_pipeline.store.written_keys import WrittenKeys
from gtm_pipeline_tests.support.store import T0

Key = tuple[str, str]

versions = st.tuples(
    st.sampled_from(["t1", "t2"]),
    st.sampled_from(["003A", "003B", "003C", "003D"]),
    st.integers(min_value=0, max_value=4),
)
batches = st.lists(st.lists(versions, min_size=0, max_size=8), min_size=1, max_size=5)
tracked = st.lists(st.booleans(), min_size=5, max_size=5)


def _model(history: list[list[tuple[str, str, int]]]) -> tuple[dict[Key, tuple[int, str]], list]:
    """Apply the documented rule in plain Python; return final state and per-batch counts."""
    state: dict[Key, tuple[int, str]] = {}
    counts = []
    for batch_number, batch in enumerate(history):
        newest: dict[Key, tuple[int, str]] = {}
        for position, (tenant, external_id, stamp) in enumerate(batch):
            key = (tenant, external_id)
            if key not in newest or stamp >= newest[key][0]:
                newest[key] = (stamp, f"b{batch_number}r{position}")
        applied = 0
        for key, version in newest.items():
            if key not in state or version[0] >= state[key][0]:
                state[key] = version
                applied += 1
        counts.append(applied)
    return state, counts


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=batches, through_writer=tracked)
def test_each_key_holds_its_newest_version(engine: sa.Engine, history, through_writer) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(persons))
    writer = WrittenKeys()
    counts = []
    for batch_number, batch in enumerate(history):
        rows = [
            {
                "tenant_id": tenant,
                "external_id": external_id,
                "system_modstamp": T0 + timedelta(seconds=stamp),
                "title": f"b{batch_number}r{position}",
            }
            for position, (tenant, external_id, stamp) in enumerate(batch)
        ]
        written = writer if through_writer[batch_number] else None
        with engine.begin() as conn:
            batch_rows = prepare_upsert(conn.dialect, persons, rows)
            counts.append(write_upsert(conn, batch_rows, written=written))
    with engine.connect() as conn:
        result = conn.execute(
            sa.select(
                persons.c.tenant_id,
                persons.c.external_id,
                persons.c.system_modstamp,
                persons.c.title,
            )
        )
        actual = {
            (row.tenant_id, row.external_id): (
                int((row.system_modstamp - T0).total_seconds()),
                row.title,
            )
            for row in result
        }
    expected_state, expected_counts = _model(history)
    assert actual == expected_state
    assert counts == expected_counts
