"""Engagement from activities (`scoring/activities.py` through the reference model): frequency by
subtype weight and recency of the latest activity within the window, for persons (by WhoId) and
accounts (by AccountId)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from gtm_pipeline.scoring.activities import activity_levels
from gtm_pipeline.scoring.model import ScoringConfig, ScoringConfigError, score_all

NOW = datetime(2024, 6, 1, tzinfo=UTC)
CONFIG = ScoringConfig()


def activity(external_id: str, who: str | None, account: str | None, subtype: str, days_ago: float):
    return {
        "external_id": external_id,
        "who_external_id": who,
        "account_external_id": account,
        "subtype": subtype,
        "occurred_at": pd.Timestamp(NOW - timedelta(days=days_ago)),
    }


def levels(rows: list[dict], by: str = "who_external_id") -> pd.Series:
    return activity_levels(
        pd.DataFrame(rows),
        by,
        now=pd.Timestamp(NOW),
        window_days=CONFIG.activity_window_days,
        half_life_days=CONFIG.activity_half_life_days,
        saturation=CONFIG.activity_saturation,
        weights=CONFIG.activity_weights,
    )


def test_a_meeting_counts_more_than_a_call_an_email_or_anything_else():
    rows = [
        activity("a1", "meets", None, "meeting", 2),
        activity("a2", "calls", None, "call", 2),
        activity("a3", "mails", None, "listemail", 2),
        activity("a4", "tasks", None, "cadence", 2),
    ]
    found = levels(rows)
    assert found["meets"] > found["calls"] > found["mails"] > found["tasks"] > 0


def test_recent_and_frequent_score_higher_and_the_window_bounds_both():
    rows = [
        activity("r1", "recent", None, "call", 1),
        activity("o1", "older", None, "call", 40),
        *(activity(f"m{i}", "many", None, "call", 40) for i in range(6)),
        activity("x1", "outside", None, "meeting", CONFIG.activity_window_days + 1),
        activity("f1", "future", None, "meeting", -3),  # scheduled: not happened yet
    ]
    found = levels(rows)
    assert found["recent"] > found["older"]
    assert found["many"] > found["older"]
    assert "outside" not in found and "future" not in found
    assert found.between(0, 1).all()


def test_a_logged_meeting_raises_the_persons_and_the_accounts_engagement():
    accounts = pd.DataFrame(
        {"external_id": ["001A"], "industry": ["Technology"], "employee_count": [500],
         "annual_revenue": [5e7]}
    )  # fmt: skip
    persons = pd.DataFrame(
        {"external_id": ["003P", "003Q"], "account_external_id": ["001A", "001A"],
         "title": ["Director", "Director"]}
    )  # fmt: skip
    opportunities = pd.DataFrame(
        columns=["external_id", "account_external_id", "stage", "amount", "close_date"]
    )
    before = score_all(accounts, persons, opportunities, CONFIG, NOW)
    meeting = pd.DataFrame([activity("00U1", "003P", "001A", "meeting", 1)])
    after = score_all(accounts, persons, opportunities, CONFIG, NOW, meeting)

    def engagement(scores: pd.DataFrame, external_id: str) -> float:
        return float(scores.set_index("external_id").loc[external_id, "engagement_score"])

    assert engagement(after, "003P") > engagement(before, "003P")
    assert engagement(after, "001A") > engagement(before, "001A")
    # The colleague gains through the account only, less than the person who met.
    assert engagement(before, "003Q") < engagement(after, "003Q") < engagement(after, "003P")


def test_deleted_activities_do_not_count():
    accounts = pd.DataFrame(
        {"external_id": ["001A"], "industry": [None], "employee_count": [None],
         "annual_revenue": [None]}
    )  # fmt: skip
    empty = pd.DataFrame(columns=["external_id", "account_external_id", "title"])
    no_opps = pd.DataFrame(
        columns=["external_id", "account_external_id", "stage", "amount", "close_date"]
    )
    deleted = pd.DataFrame([activity("00U1", None, "001A", "meeting", 1) | {"is_deleted": True}])
    scores = score_all(accounts, empty, no_opps, CONFIG, NOW, deleted)
    assert scores.loc[0, "engagement_score"] == 0.0


@pytest.mark.parametrize(
    "options",
    [
        {"activity_weight": 0.8, "seniority_weight": 0.3},  # more than all of engagement
        {"activity_weight": 1.5},
        {"activity_window_days": 0},
        {"activity_saturation": -1},
        {"activity_weights": {"meeting": 1.0, "call": 0.5}},  # groups missing
        {"activity_weights": {"meeting": 2.0, "call": 0.5, "email": 0.3, "other": 0.1}},
    ],
)
def test_a_meaningless_activity_setting_is_refused(options):
    with pytest.raises(ScoringConfigError):
        ScoringConfig(**options)
