"""Sync cursors: stored in the caller's transaction, together with the rows they cover."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from gtm_pipeline.store import (
    Cursor,
    NaiveDatetimeError,
    get_cursor,
    mark_run_started,
    mark_run_succeeded,
    persons,
    save_cursor,
    sync_state,
    upsert_records,
)
from gtm_pipeline_tests.support.store import T0


def _state(engine: sa.Engine, tenant: str, entity: str) -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sync_state).where(
                sync_state.c.tenant_id == tenant, sync_state.c.entity == entity
            )
        ).one()


def test_no_cursor_before_the_first_sync(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        assert get_cursor(conn, "t1", "persons") is None


def test_save_then_advance(engine: sa.Engine) -> None:
    first = Cursor(T0, "003A")
    second = Cursor(T0 + timedelta(minutes=5), "003Z")
    with engine.begin() as conn:
        save_cursor(conn, "t1", "persons", first, "full", {"rows_loaded": 10})
    with engine.begin() as conn:
        assert get_cursor(conn, "t1", "persons") == first
        save_cursor(conn, "t1", "persons", second, "incremental", {"rows_loaded": 3})
    with engine.connect() as conn:
        assert get_cursor(conn, "t1", "persons") == second
        assert get_cursor(conn, "t2", "persons") is None
        assert get_cursor(conn, "t1", "accounts") is None
    state = _state(engine, "t1", "persons")
    assert (state.mode, state.last_stats) == ("incremental", {"rows_loaded": 3})


def test_cursor_comes_back_as_aware_utc(engine: sa.Engine) -> None:
    local = datetime(2024, 3, 1, 14, 0, 0, 500, tzinfo=timezone(timedelta(hours=2)))
    with engine.begin() as conn:
        save_cursor(conn, "t1", "persons", Cursor(local, "003A"), "full")
    with engine.connect() as conn:
        cursor = get_cursor(conn, "t1", "persons")
    assert cursor is not None
    assert cursor.system_modstamp == local
    assert cursor.system_modstamp.utcoffset() == timedelta(0)


def test_rollback_leaves_rows_and_cursor_unchanged(engine: sa.Engine) -> None:
    committed = Cursor(T0, "003A")
    with engine.begin() as conn:
        upsert_records(conn, persons, [_person("003A", T0, "committed")])
        save_cursor(conn, "t1", "persons", committed, "full")

    with engine.connect() as conn, conn.begin() as transaction:
        upsert_records(conn, persons, [_person("003A", T0 + timedelta(1), "uncommitted")])
        upsert_records(conn, persons, [_person("003B", T0 + timedelta(1), "uncommitted")])
        save_cursor(conn, "t1", "persons", Cursor(T0 + timedelta(1), "003B"), "incremental")
        assert get_cursor(conn, "t1", "persons") == Cursor(T0 + timedelta(1), "003B")
        transaction.rollback()

    with engine.connect() as conn:
        assert get_cursor(conn, "t1", "persons") == committed
        emails = conn.execute(sa.select(persons.c.external_id, persons.c.email)).all()
    assert emails == [("003A", "committed")]


def test_run_markers_keep_the_cursor(engine: sa.Engine) -> None:
    cursor = Cursor(T0, "003A")
    with engine.begin() as conn:
        save_cursor(conn, "t1", "persons", cursor, "full", {"pages": 1})
        mark_run_started(conn, "t1", "persons", "incremental", at=T0 + timedelta(hours=1))
    with engine.begin() as conn:
        mark_run_succeeded(conn, "t1", "persons", at=T0 + timedelta(hours=2))
    state = _state(engine, "t1", "persons")
    assert (state.cursor_modstamp, state.cursor_id) == (T0, "003A")
    assert state.last_started_at == T0 + timedelta(hours=1)
    assert state.last_succeeded_at == T0 + timedelta(hours=2)
    assert state.mode == "incremental"
    assert state.last_stats == {"pages": 1}


def test_a_run_can_start_before_any_cursor_exists(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        mark_run_started(conn, "t1", "accounts", "full")
        assert get_cursor(conn, "t1", "accounts") is None
    assert _state(engine, "t1", "accounts").last_started_at is not None


def test_bad_cursor_input_is_refused(engine: sa.Engine) -> None:
    with pytest.raises(NaiveDatetimeError):
        Cursor(datetime(2024, 3, 1), "003A")
    with pytest.raises(ValueError, match="non-empty"):
        Cursor(T0, "")
    with engine.begin() as conn, pytest.raises(ValueError, match="sync mode"):
        save_cursor(conn, "t1", "persons", Cursor(T0, "003A"), "sometimes")


def _person(external_id: str, modstamp: datetime, email: str) -> dict:
    return {
        "tenant_id": "t1",
        "external_id": external_id,
        "system_modstamp": modstamp,
        "email": email,
    }
