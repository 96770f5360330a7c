"""The quarantine's replace/forget by id lists longer than one statement's chunk, both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gtm_pipeline.store.id_filters import CHUNK, among, chunks
from gtm_pipeline.store.quarantine import failures_for, forget_failures, replace_failures
from gtm_pipeline.store.tables import quality_failures

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _ids(count: int, prefix: str = "003") -> list[str]:
    return [f"{prefix}{n:015d}" for n in range(count)]


def _failure(external_id: str, reason: str = "missing email") -> dict:
    return {"external_id": external_id, "stage": "required", "field": "email", "reason": reason,
            "raw": {"Id": external_id}}  # fmt: skip


def test_replace_spans_chunks_keeps_first_seen_and_leaves_unseen_records(engine) -> None:
    ids = _ids(CHUNK * 2 + 500)
    failing = ids[::7]
    with engine.begin() as conn:
        replace_failures(conn, "t1", "persons", ids, [_failure(i) for i in failing],
                         run_id="r1", now=T0)  # fmt: skip
        replace_failures(conn, "t2", "persons", ids[:10], [_failure(ids[0])], run_id="r1", now=T0)
    later = T0 + timedelta(days=1)
    still_failing = failing[::2]
    seen_again = ids[: CHUNK * 2]  # the last 500 are not on this page: their entries stay
    with engine.begin() as conn:
        replace_failures(conn, "t1", "persons", seen_again,
                         [_failure(i, "still missing") for i in still_failing if i in seen_again],
                         run_id="r2", now=later)  # fmt: skip
        rows = {r["external_id"]: r for r in failures_for(conn, "t1", "persons")}
        other_tenant = failures_for(conn, "t2", "persons")
    expected = {i for i in failing if i not in seen_again} | {
        i for i in still_failing if i in seen_again
    }
    assert set(rows) == expected
    for external_id in still_failing:
        if external_id in seen_again:
            assert rows[external_id]["first_seen_at"] == T0
            assert rows[external_id]["last_seen_at"] == later
            assert rows[external_id]["reason"] == "still missing"
    assert [r["external_id"] for r in other_tenant] == [ids[0]]


def test_forget_removes_only_the_given_records(engine) -> None:
    ids = _ids(CHUNK + 300)
    with engine.begin() as conn:
        replace_failures(conn, "t1", "accounts", ids, [_failure(i) for i in ids],
                         run_id=None, now=T0)  # fmt: skip
        removed = forget_failures(conn, "t1", "accounts", ids[5:] + ids[5:10])
        left = [r["external_id"] for r in failures_for(conn, "t1", "accounts")]
    assert removed == len(ids) - 5
    assert sorted(left) == ids[:5]


def test_chunks_fit_the_database(engine) -> None:
    ids = _ids(CHUNK * 3 + 1)
    with engine.connect() as conn:
        parts = chunks(conn, ids)
    assert [i for part in parts for i in part] == ids
    expected = 1 if engine.dialect.name == "postgresql" else 4
    assert len(parts) == expected


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_matches_ids_by_hash_join_not_per_row_array_scan(engine) -> None:
    """Before statistics exist the planner scanned the tenant's rows and compared each with
    the whole `= ANY(array)` (quadratic); the unnest subquery is hashed instead."""
    ids = _ids(3000)
    with engine.begin() as conn:
        replace_failures(conn, "t1", "persons", ids, [_failure(i) for i in ids],
                         run_id=None, now=T0)  # fmt: skip
        query = sa.select(quality_failures.c.external_id).where(
            quality_failures.c.tenant_id == "t1",
            quality_failures.c.entity == "persons",
            among(conn, quality_failures.c.external_id, ids[:1000]),
        )
        compiled = query.compile(conn, compile_kwargs={"render_postcompile": True})
        plan = "\n".join(
            row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
        )
        matched = conn.execute(query).scalars().all()
    assert sorted(matched) == ids[:1000]
    assert "Hash" in plan
    assert "= ANY" not in plan
