"""Slice plans in the store: saved, advanced (never back), finished, dropped, per tenant."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from gtm_pipeline.store.cursors import Cursor
from gtm_pipeline.store.slices import (
    Slice,
    SliceProgress,
    drop_plan,
    furthest_position,
    load_plan,
    record_progress,
    save_plan,
)
from gtm_pipeline.store.tenants import delete_synced_data
from gtm_pipeline_tests.support.store import T0

PLAN = [
    Slice(0, None, T0),
    Slice(1, T0, T0 + timedelta(days=1)),
    Slice(2, T0 + timedelta(days=1), None),
]


def test_a_plan_is_saved_unread_and_read_back_in_order(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        save_plan(conn, "t", "persons", list(reversed(PLAN)), T0)
        assert load_plan(conn, "t", "persons") == [SliceProgress(p, None, done=False) for p in PLAN]
        assert load_plan(conn, "t", "accounts") == [] and load_plan(conn, "u", "persons") == []


def test_progress_moves_forward_only_and_the_furthest_position_is_the_largest(
    engine: sa.Engine,
) -> None:
    early, late = Cursor(T0 - timedelta(days=3), "003A"), Cursor(T0 + timedelta(days=2), "003B")
    with engine.begin() as conn:
        save_plan(conn, "t", "persons", PLAN, T0)
        assert furthest_position(conn, "t", "persons") is None
        record_progress(conn, "t", "persons", 0, early, done=False)
        record_progress(conn, "t", "persons", 2, late, done=False)
        record_progress(conn, "t", "persons", 2, Cursor(T0 + timedelta(days=1), "003C"), done=True)
        plan = load_plan(conn, "t", "persons")
        assert [(p.cursor, p.done) for p in plan] == [(early, False), (None, False), (late, True)]
        assert furthest_position(conn, "t", "persons") == late
        record_progress(conn, "t", "persons", 1, None, done=True)
        assert load_plan(conn, "t", "persons")[1] == SliceProgress(PLAN[1], None, done=True)


def test_a_new_plan_replaces_the_old_one_and_plans_go_with_the_tenants_data(
    engine: sa.Engine,
) -> None:
    with engine.begin() as conn:
        save_plan(conn, "t", "persons", PLAN, T0)
        save_plan(conn, "t", "persons", PLAN[:1], T0)
        assert len(load_plan(conn, "t", "persons")) == 1
        save_plan(conn, "t", "accounts", PLAN, T0)
        drop_plan(conn, "t", "persons")
        assert load_plan(conn, "t", "persons") == []
        delete_synced_data(conn, "t")
        assert load_plan(conn, "t", "accounts") == []
