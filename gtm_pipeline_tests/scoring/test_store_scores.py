"""The scores table access on SQLite and PostgreSQL: live inputs, upsert by key, reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from gtm_pipeline.scoring import ScoringConfig, score_all
from gtm_pipeline.store import (
    InvalidRowsError,
    accounts,
    activities,
    opportunities,
    persons,
    upsert_records,
)
from gtm_pipeline.store.scoring import (
    load_activities,
    load_scoring_inputs,
    read_scores,
    write_scores,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _seed(engine: sa.Engine, tenant: str) -> None:
    stamp = {"tenant_id": tenant, "system_modstamp": T0}
    with engine.begin() as conn:
        upsert_records(
            conn,
            accounts,
            [
                {**stamp, "external_id": "001A", "name": "Acme", "industry": "Technology",
                 "employee_count": 1200, "annual_revenue": 3e8, "is_deleted": False},
                {**stamp, "external_id": "001B", "name": "Gone", "industry": "Retail",
                 "employee_count": 10, "annual_revenue": None, "is_deleted": True},
            ],
        )  # fmt: skip
        upsert_records(
            conn,
            persons,
            [
                {**stamp, "external_id": "003A", "account_external_id": "001A",
                 "title": "CTO", "email": "a@example.com", "is_deleted": False},
                {**stamp, "external_id": "003B", "account_external_id": "001A",
                 "title": "CEO", "email": "b@example.com", "is_deleted": True},
            ],
        )  # fmt: skip
        upsert_records(
            conn,
            opportunities,
            [
                {**stamp, "external_id": "006A", "account_external_id": "001A",
                 "stage": "Closed Won", "amount": 250_000.0, "close_date": date(2024, 5, 1),
                 "is_deleted": False},
                {**stamp, "external_id": "006B", "account_external_id": "001A",
                 "stage": "Prospecting", "amount": 10.0, "close_date": None,
                 "is_deleted": True},
            ],
        )  # fmt: skip


def test_load_scoring_inputs_returns_live_rows_of_the_tenant(engine: sa.Engine) -> None:
    _seed(engine, "t1")
    _seed(engine, "t2")
    with engine.connect() as conn:
        accts, people, opps = load_scoring_inputs(conn, "t1")
        empty = load_scoring_inputs(conn, "nobody")
    assert accts["external_id"].tolist() == ["001A"]
    assert accts.loc[0, "industry"] == "Technology"
    assert accts.loc[0, "employee_count"] == 1200
    assert people["external_id"].tolist() == ["003A"]
    assert opps["external_id"].tolist() == ["006A"]
    assert opps.loc[0, "close_date"] == date(2024, 5, 1)
    assert [len(frame) for frame in empty] == [0, 0, 0]
    assert "external_id" in empty[0].columns


def test_scores_round_trip_from_inputs_to_the_table(engine: sa.Engine) -> None:
    _seed(engine, "t1")
    config = ScoringConfig()
    with engine.connect() as conn:
        scored = score_all(*load_scoring_inputs(conn, "t1"), config, NOW)
    with engine.begin() as conn:
        written = write_scores(conn, "t1", scored)
    with engine.connect() as conn:
        stored = read_scores(conn, "t1")
    assert written == 3
    expected = scored.sort_values(["entity_type", "external_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
    assert str(stored["scored_at"].dt.tz) == "UTC"
    assert stored.set_index("external_id").loc["001A", "tier"] in {"A", "B", "C", "D"}


def _score(entity_type: str, external_id: str, combined: float, when: datetime) -> dict:
    return {
        "entity_type": entity_type,
        "external_id": external_id,
        "fit_score": 10.0,
        "engagement_score": 20.0,
        "combined_score": combined,
        "tier": "D",
        "scored_at": when,
    }


def test_write_scores_upserts_by_key_last_write_wins(engine: sa.Engine) -> None:
    first = pd.DataFrame([_score("account", "001A", 14.0, T0), _score("person", "001A", 15.0, T0)])
    later = T0 + timedelta(days=1)
    # An older scored_at written later still wins: the newest run is the truth.
    second = pd.DataFrame([_score("account", "001A", 99.5, T0 - timedelta(days=1))])
    with engine.begin() as conn:
        assert write_scores(conn, "t1", first) == 2
        write_scores(conn, "t2", pd.DataFrame([_score("account", "001A", 1.0, later)]))
    with engine.begin() as conn:
        assert write_scores(conn, "t1", second) == 1
    with engine.connect() as conn:
        t1 = read_scores(conn, "t1")
        t1_accounts = read_scores(conn, "t1", "account")
        t2 = read_scores(conn, "t2")
    assert list(zip(t1["entity_type"], t1["combined_score"], strict=True)) == [
        ("account", 99.5),
        ("person", 15.0),
    ]
    assert t1_accounts["external_id"].tolist() == ["001A"]
    assert t1_accounts.loc[0, "scored_at"] == pd.Timestamp(T0 - timedelta(days=1))
    assert t2["combined_score"].tolist() == [1.0]


def test_a_key_repeated_in_one_frame_is_written_once(engine: sa.Engine) -> None:
    frame = pd.DataFrame([_score("account", "a", 1.0, T0), _score("account", "a", 2.0, T0)])
    with engine.begin() as conn:
        assert write_scores(conn, "t1", frame) == 1
    with engine.connect() as conn:
        assert read_scores(conn, "t1")["combined_score"].tolist() == [2.0]


def test_empty_reads_and_writes(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        assert write_scores(conn, "t1", pd.DataFrame(columns=["entity_type"])) == 0
        stored = read_scores(conn, "t1", "opportunity")
    assert stored.empty
    assert "combined_score" in stored.columns


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame([{**_score("campaign", "x", 1.0, T0)}]), "unknown entity_type"),
        (pd.DataFrame([{**_score("account", "x", 1.0, T0), "colour": 1}]), "unknown column"),
        (pd.DataFrame([{**_score("account", "x", 1.0, T0), "tenant_id": "t2"}]), "tenant_id"),
        (pd.DataFrame([{"entity_type": "account", "external_id": "x"}]), "scored_at"),
        (
            pd.DataFrame([_score("account", "x", 1.0, T0.replace(tzinfo=None))]),
            "naive|timezone-aware",
        ),
    ],
)
def test_write_scores_rejects_bad_frames(
    engine: sa.Engine, frame: pd.DataFrame, message: str
) -> None:
    with engine.begin() as conn, pytest.raises(InvalidRowsError, match=message):
        write_scores(conn, "t1", frame)
    with engine.connect() as conn:
        assert read_scores(conn, "t1").empty


def test_read_scores_rejects_an_unknown_entity_type(engine: sa.Engine) -> None:
    with engine.connect() as conn, pytest.raises(ValueError, match="entity_type must be one of"):
        read_scores(conn, "t1", "campaign")


def test_load_activities_reads_only_those_after_since(engine):
    now = datetime(2024, 6, 1, tzinfo=UTC)
    rows = [
        {"tenant_id": "t1", "external_id": f"00T{n}", "kind": "task", "subtype": "call",
         "occurred_at": now - timedelta(days=days), "who_external_id": "003A",
         "system_modstamp": now, "is_deleted": deleted, "synced_at": now}
        for n, (days, deleted) in enumerate([(1, False), (30, False), (200, False), (2, True)])
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.insert(activities), rows)
        recent = load_activities(conn, "t1", now - timedelta(days=90))
        everything = load_activities(conn, "t1")
    assert sorted(recent.external_id) == ["00T0", "00T1"]  # the old one and the deleted one out
    assert sorted(everything.external_id) == ["00T0", "00T1", "00T2"]
