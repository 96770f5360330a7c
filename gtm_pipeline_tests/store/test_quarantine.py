"""The quarantine's replace/forget by long id lists, both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gtm_pipeline.store import upsert_records
from gtm_pipeline.store.id_filters import among, rows_by_id
from gtm_pipeline.store.quarantine import failures_for, forget_failures, replace_failures
from gtm_pipeline.store.tables import persons, quality_failures
from gtm_pipeline_tests.support.store import query_plan, selects_from

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _ids(count: int, prefix: str = "003") -> list[str]:
    return [f"{prefix}{n:015d}" for n in range(count)]


def _failure(external_id: str, reason: str = "missing email") -> dict:
    return {"external_id": external_id, "stage": "required", "field": "email", "reason": reason,
            "raw": {"Id": external_id}}  # fmt: skip


def test_replace_keeps_first_seen_and_leaves_unseen_records(engine) -> None:
    ids = _ids(2500)
    failing = ids[::7]
    with engine.begin() as conn:
        replace_failures(conn, "t1", "persons", ids, [_failure(i) for i in failing],
                         run_id="r1", now=T0)  # fmt: skip
        replace_failures(conn, "t2", "persons", ids[:10], [_failure(ids[0])], run_id="r1", now=T0)
    later = T0 + timedelta(days=1)
    still_failing = failing[::2]
    seen_again = ids[:2000]  # the last 500 are not on this page: their entries stay
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
    ids = _ids(1300)
    with engine.begin() as conn:
        replace_failures(conn, "t1", "accounts", ids, [_failure(i) for i in ids],
                         run_id=None, now=T0)  # fmt: skip
        removed = forget_failures(conn, "t1", "accounts", ids[5:] + ids[5:10])
        left = [r["external_id"] for r in failures_for(conn, "t1", "accounts")]
    assert removed == len(ids) - 5
    assert sorted(left) == ids[:5]


def test_ids_travel_as_one_bound_value(engine) -> None:
    ids = _ids(5000)
    statements: list[tuple[str, object]] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append((a[2], a[3])))
    with engine.begin() as conn:
        replace_failures(conn, "t1", "persons", ids, [_failure(ids[-1])], run_id=None, now=T0)
    deletes = [(sql, params) for sql, params in statements if sql.lstrip().startswith("DELETE")]
    assert len(deletes) == 1
    params = deletes[0][1]
    values = params.values() if isinstance(params, dict) else params
    assert len(values) == 3  # tenant, entity and the ids


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_statements_are_planned_for_their_ids_never_prepared(engine) -> None:
    """psycopg 3 prepared a statement after 5 runs and PostgreSQL then used one plan for any
    ids, scanning the array per row: 0.5-1 s per 10,000-id batch once the quarantine grew."""
    with engine.begin() as conn:
        for batch in range(12):
            ids = _ids(2000, prefix=f"{batch:03d}")
            replace_failures(conn, "t1", "persons", ids, [_failure(i) for i in ids[:50]],
                             run_id=None, now=T0)  # fmt: skip
        prepared = conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements").scalar()
        query = sa.select(quality_failures.c.external_id).where(
            quality_failures.c.tenant_id == "t1",
            among(conn, quality_failures.c.external_id, _ids(60, prefix="005")),
        )
        matched = sorted(conn.execute(query).scalars())
    assert prepared == 0
    assert matched == _ids(50, prefix="005")


@pytest.mark.parametrize(
    "wanted",
    [
        ["003A", "003B"],
        ["003A"],
        [""],
        [],
        ["003A", "bad\x1fid", ""],
        ["(no id, row 7)", "003B"],
        ["", "003A"],
        ["", ""],
        ["003A", "003A"],
        ["\x1f"],
    ],
)
def test_among_matches_exactly_the_given_ids(engine, wanted) -> None:
    stored = ["003A", "003B", "003C", "", "bad\x1fid", "(no id, row 7)"]
    with engine.begin() as conn:
        for external_id in stored:
            replace_failures(conn, "t1", "persons", [external_id], [_failure(external_id)],
                             run_id=None, now=T0)  # fmt: skip
        query = sa.select(quality_failures.c.external_id).where(
            quality_failures.c.tenant_id == "t1",
            among(conn, quality_failures.c.external_id, wanted),
        )
        matched = sorted(conn.execute(query).scalars())
    assert matched == sorted(set(wanted) & set(stored))


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_folds_the_joined_ids_into_a_constant_array(engine) -> None:
    """A constant array is what PostgreSQL hashes; a function call left in the plan would be
    evaluated and scanned row by row, quadratic in batch size."""
    with engine.connect() as conn:
        query = sa.select(quality_failures.c.external_id).where(
            quality_failures.c.tenant_id == "t1",
            among(conn, quality_failures.c.external_id, _ids(20)),
        )
        compiled = query.compile(dialect=conn.dialect)
        plan = "\n".join(
            conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params).scalars()
        )
    assert "string_to_array" not in plan
    assert "ANY ('{003000000000000000," in plan


def _person(external_id: str, email: str | None, **extra) -> dict:
    return {"tenant_id": "t1", "external_id": external_id, "email": email, "system_modstamp": T0,
            "synced_at": T0, "is_deleted": False, "deleted_at": None, **extra}  # fmt: skip


def test_twins_are_counted_listed_and_held_back_under_deduplication(engine) -> None:
    from gtm_pipeline.store.duplicates import refresh_duplicates
    from gtm_pipeline.store.quarantine import standing_counts, twins_of
    from gtm_pipeline.store.tables import persons
    from gtm_pipeline.store.upsert import upsert_records
    from gtm_pipeline.sync.quality_report import quality_report

    rows = [_person("003B", "a@x.io"), _person("003A", "a@x.io"), _person("003C", "a@x.io"),
            _person("003D", "b@x.io"), _person("003E", None),
            _person("003F", "b@x.io", is_deleted=True, deleted_at=T0)]  # fmt: skip
    with engine.begin() as conn:
        upsert_records(conn, persons, rows)
        refresh_duplicates(conn, "t1", ["a@x.io", "b@x.io"])
        replace_failures(conn, "t1", "persons", ["003G"], [_failure("003G")], run_id="r", now=T0)
        count, listed = twins_of(conn, "t1", "persons", limit=1)
        counts, records = standing_counts(conn, "t1", "persons")
        assert twins_of(conn, "t1", "accounts") == (0, [])
    assert count == 2 and [t["external_id"] for t in listed] == ["003B"]
    assert listed[0]["reason"] == "duplicate email of record 003A"
    assert counts == {"required": 1, "deduplication": 2}
    assert records == 6  # five rows not deleted, one quarantined record
    report = quality_report(engine, "t1", ["persons"], limit=5, threshold=0.05)
    assert "email twins left out of the live set: 2" in report
    assert "003B" in report and "003C" in report and "duplicate email of record 003A" in report


@pytest.mark.parametrize(
    "wanted", [["003A", "003B"], ["003A", "003A", "003Z"], [], ["", "bad\x1fid"], ["", "003A"]]
)
def test_rows_by_id_finds_exactly_the_tenants_rows_of_the_given_ids(engine, wanted) -> None:
    ids = ["003A", "003B", "003C", "", "bad\x1fid"]
    with engine.begin() as conn:
        upsert_records(conn, persons, [_person(i, None) for i in ids])
        upsert_records(conn, persons, [{**_person("003Z", None), "tenant_id": "t2"}])
        query = rows_by_id(conn, persons, "t1", wanted, persons.c.external_id, lock=True)
        found = conn.execute(query).scalars().all()
    assert sorted(found) == sorted(set(wanted) & set(ids))


@pytest.mark.parametrize("lock", [True, False])
def test_rows_by_id_looks_each_id_up_by_the_key_before_any_statistics(engine, lock) -> None:
    """A new store's first sync: no ANALYZE has run. With `external_id = ANY(...)` PostgreSQL
    read every row of the tenant through the modstamp index for each lookup (the stored stamps of
    a 1,000,000-Contact first sync's quarantined ids: seconds, growing with every batch)."""
    with engine.begin() as conn:
        upsert_records(conn, persons, [_person(f"003{i:015d}", None) for i in range(20_000)])
    wanted = [f"003{i:015d}" for i in range(0, 20_000, 40)]
    with selects_from(engine, "persons") as selects, engine.begin() as conn:
        query = rows_by_id(conn, persons, "t1", wanted, persons.c.system_modstamp, lock=lock)
        conn.execute(query).all()
        plan = query_plan(conn, *selects[0])
    assert "ix_persons_tenant_id_system_modstamp" not in plan, plan
    key = {"postgresql": "Index Scan using pk_persons on persons", "sqlite": "sqlite_autoindex"}
    assert key[engine.dialect.name] in plan, plan
