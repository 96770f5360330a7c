"""The reference scoring model: bounds, tiers, monotonicity, deletions, determinism, config."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gtm_pipeline.scoring import (
    INDUSTRY_WEIGHTS,
    SCORE_COLUMNS,
    ScoringConfig,
    ScoringConfigError,
    ScoringInputError,
    score_accounts,
    score_all,
    score_opportunities,
    score_persons,
    title_seniority,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
CONFIG = ScoringConfig()
INDUSTRIES = [*INDUSTRY_WEIGHTS, "Unlisted", None]
STAGES = ["Prospecting", "Value Proposition", "Negotiation/Review", "Closed Won", "Closed Lost"]


def _accounts(rows: list[dict]) -> pd.DataFrame:
    base = {"industry": None, "employee_count": None, "annual_revenue": None, "is_deleted": False}
    columns = ["external_id", *base]
    return pd.DataFrame([{**base, **row} for row in rows], columns=columns)


def _opps(rows: list[dict]) -> pd.DataFrame:
    base = {"stage": None, "amount": None, "close_date": None, "is_deleted": False}
    columns = ["external_id", "account_external_id", "stage", "amount", "close_date", "is_deleted"]
    return pd.DataFrame([{**base, **row} for row in rows], columns=columns)


def _persons(rows: list[dict]) -> pd.DataFrame:
    base = {"title": None, "account_external_id": None, "is_deleted": False}
    columns = ["external_id", *base]
    return pd.DataFrame([{**base, **row} for row in rows], columns=columns)


NO_OPPS = _opps([])

account_rows = st.lists(
    st.fixed_dictionaries(
        {
            "industry": st.sampled_from(INDUSTRIES),
            "employee_count": st.one_of(st.none(), st.integers(0, 500_000)),
            "annual_revenue": st.one_of(st.none(), st.floats(0, 1e11, allow_nan=False)),
            "is_deleted": st.booleans(),
        }
    ),
    max_size=25,
)
opp_rows = st.lists(
    st.fixed_dictionaries(
        {
            "account": st.integers(0, 30),
            "stage": st.one_of(st.none(), st.sampled_from([*STAGES, "Unknown stage"])),
            "amount": st.one_of(st.none(), st.floats(0, 1e8, allow_nan=False)),
            "close_date": st.one_of(st.none(), st.dates(date(2015, 1, 1), date(2030, 1, 1))),
            "is_deleted": st.booleans(),
        }
    ),
    max_size=40,
)


def _frames(accts: list[dict], opps: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    accounts = _accounts([{"external_id": f"001{i:04d}", **row} for i, row in enumerate(accts)])
    opportunities = _opps(
        [
            {
                "external_id": f"006{i:04d}",
                "account_external_id": f"001{row['account']:04d}",
                **{k: v for k, v in row.items() if k != "account"},
            }
            for i, row in enumerate(opps)
        ]
    )
    return accounts, opportunities


def _expected_tier(config: ScoringConfig, score: float) -> str:
    if score >= config.tier_a:
        return "A"
    if score >= config.tier_b:
        return "B"
    if score >= config.tier_c:
        return "C"
    return "D"


@settings(max_examples=60, deadline=None)
@given(accts=account_rows, opps=opp_rows)
def test_scores_are_bounded_tiered_and_skip_deleted(accts: list[dict], opps: list[dict]) -> None:
    accounts, opportunities = _frames(accts, opps)
    persons = _persons(
        [{"external_id": f"003{i:04d}", "account_external_id": f"001{i:04d}"} for i in range(5)]
    )
    result = score_all(accounts, persons, opportunities, CONFIG, NOW)

    assert list(result.columns) == list(SCORE_COLUMNS)
    for column in ("fit_score", "engagement_score", "combined_score"):
        assert result[column].between(0.0, 100.0).all()
        assert (result[column] == result[column].round(2)).all()
    assert [_expected_tier(CONFIG, s) for s in result["combined_score"]] == list(result["tier"])
    assert (result["scored_at"] == pd.Timestamp(NOW)).all()
    assert str(result["scored_at"].dt.tz) == "UTC"

    live_accounts = set(accounts.loc[~accounts["is_deleted"], "external_id"])
    scored_accounts = result.loc[result["entity_type"] == "account", "external_id"]
    assert set(scored_accounts) == live_accounts
    live_opps = set(opportunities.loc[~opportunities["is_deleted"], "external_id"])
    scored_opps = result.loc[result["entity_type"] == "opportunity", "external_id"]
    assert set(scored_opps) == live_opps
    assert not result.duplicated(["entity_type", "external_id"]).any()


@settings(max_examples=40, deadline=None)
@given(accts=account_rows, opps=opp_rows)
def test_scoring_is_deterministic_and_order_independent(
    accts: list[dict], opps: list[dict]
) -> None:
    accounts, opportunities = _frames(accts, opps)
    first = score_accounts(accounts, opportunities, CONFIG, NOW)
    shuffled = score_accounts(
        accounts.iloc[::-1], opportunities.sample(frac=1.0, random_state=7), CONFIG, NOW
    )
    pd.testing.assert_frame_equal(first, shuffled)
    pd.testing.assert_frame_equal(first, score_accounts(accounts, opportunities, CONFIG, NOW))


@settings(max_examples=60, deadline=None)
@given(
    industry=st.sampled_from(INDUSTRIES),
    employees=st.tuples(st.integers(0, 100_000), st.integers(0, 100_000)),
    revenue=st.tuples(st.floats(0, 1e10), st.floats(0, 1e10)),
)
def test_fit_never_drops_when_employees_or_revenue_grow(
    industry: str | None, employees: tuple[int, int], revenue: tuple[float, float]
) -> None:
    small_e, big_e = sorted(employees)
    small_r, big_r = sorted(revenue)
    accounts = _accounts(
        [
            {"external_id": "a", "industry": industry, "employee_count": small_e,
             "annual_revenue": small_r},
            {"external_id": "b", "industry": industry, "employee_count": big_e,
             "annual_revenue": small_r},
            {"external_id": "c", "industry": industry, "employee_count": small_e,
             "annual_revenue": big_r},
        ]
    )  # fmt: skip
    fit = score_accounts(accounts, NO_OPPS, CONFIG, NOW).set_index("external_id")["fit_score"]
    assert fit["b"] >= fit["a"]
    assert fit["c"] >= fit["a"]


def test_bands_raise_fit_strictly_across_an_edge() -> None:
    accounts = _accounts(
        [
            {"external_id": "small", "industry": "Retail", "employee_count": 5,
             "annual_revenue": 5e5},
            {"external_id": "large", "industry": "Retail", "employee_count": 25_000,
             "annual_revenue": 1e10},
        ]
    )  # fmt: skip
    fit = score_accounts(accounts, NO_OPPS, CONFIG, NOW).set_index("external_id")["fit_score"]
    # Retail 0.55 * 0.4 = 22; all employee and revenue bands reached adds 30 + 30.
    assert fit["small"] == 22.0
    assert fit["large"] == 82.0


def test_engagement_follows_stage_amount_and_recency() -> None:
    accounts = _accounts([{"external_id": x} for x in ("won", "lost", "stale", "none")])
    opportunities = _opps(
        [
            {"external_id": "o1", "account_external_id": "won", "stage": "Closed Won",
             "amount": 2e6, "close_date": date(2024, 6, 1)},
            {"external_id": "o2", "account_external_id": "lost", "stage": "Closed Lost",
             "amount": 2e6, "close_date": date(2024, 6, 1)},
            {"external_id": "o3", "account_external_id": "stale", "stage": "Closed Won",
             "amount": 2e6, "close_date": date(2023, 12, 4)},
        ]
    )  # fmt: skip
    deals_only = replace(CONFIG, activity_weight=0.0)
    scored = score_accounts(accounts, opportunities, deals_only, NOW).set_index("external_id")
    engagement = scored["engagement_score"]
    assert engagement["won"] == 100.0
    # Lost: no stage progress and its amount is not counted; only recency remains.
    assert engagement["lost"] == 25.0
    # Closed 180 days (one half-life) before NOW: recency 0.5.
    assert engagement["stale"] == 87.5
    assert engagement["none"] == 0.0
    assert scored.loc["won", "combined_score"] == round(0.6 * 8.0 + 0.4 * 100.0, 2)
    # With the default weights and no activity, the deals make up the rest of engagement.
    blended = score_accounts(accounts, opportunities, CONFIG, NOW).set_index("external_id")
    expected = ((1 - CONFIG.activity_weight) * engagement).round(2)
    assert blended["engagement_score"].tolist() == expected.tolist()


def test_deleted_opportunities_do_not_count_for_their_account() -> None:
    accounts = _accounts([{"external_id": "a"}])
    opportunities = _opps(
        [{"external_id": "o", "account_external_id": "a", "stage": "Closed Won",
          "amount": 1e6, "close_date": date(2024, 6, 1), "is_deleted": True}]
    )  # fmt: skip
    scored = score_accounts(accounts, opportunities, CONFIG, NOW)
    assert scored["engagement_score"].tolist() == [0.0]
    assert score_opportunities(opportunities, scored, CONFIG, NOW).empty


def test_persons_inherit_fit_and_add_seniority() -> None:
    accounts = _accounts(
        [{"external_id": "a", "industry": "Technology", "employee_count": 300,
          "annual_revenue": 6e7}]
    )  # fmt: skip
    account_scores = score_accounts(accounts, NO_OPPS, CONFIG, NOW)
    persons = _persons(
        [
            {"external_id": "ceo", "account_external_id": "a", "title": "CEO"},
            {"external_id": "eng", "account_external_id": "a", "title": "Data Engineer"},
            {"external_id": "orphan", "account_external_id": None, "title": "VP of Sales"},
            {"external_id": "gone", "account_external_id": "a", "title": "CEO",
             "is_deleted": True},
        ]
    )  # fmt: skip
    scored = score_persons(persons, account_scores, CONFIG, NOW).set_index("external_id")
    assert list(scored.index) == ["ceo", "eng", "orphan"]
    assert scored.loc["ceo", "fit_score"] == account_scores.loc[0, "fit_score"]
    assert scored.loc["orphan", "fit_score"] == 0.0
    assert scored.loc["ceo", "engagement_score"] == 30.0
    assert scored.loc["eng", "engagement_score"] == 6.0
    assert scored.loc["orphan", "engagement_score"] == 24.0
    assert set(scored["entity_type"]) == {"person"}


def test_leads_are_scored_as_persons_under_their_own_entity_type() -> None:
    account_scores = score_accounts(_accounts([{"external_id": "a"}]), NO_OPPS, CONFIG, NOW)
    rows = [
        {"external_id": "003c", "title": "CEO", "source_object": "Contact"},
        {"external_id": "00Ql", "title": "CEO", "source_object": "Lead"},
    ]
    persons = pd.DataFrame(rows).assign(account_external_id=None, is_deleted=False)
    scored = score_persons(persons, account_scores, CONFIG, NOW).set_index("external_id")
    assert scored["entity_type"].to_dict() == {"003c": "person", "00Ql": "lead"}
    same = ["fit_score", "engagement_score", "combined_score", "tier"]
    assert scored.loc["003c", same].tolist() == scored.loc["00Ql", same].tolist()


def test_title_seniority_rules() -> None:
    titles = pd.Series(["Chief Revenue Officer", "svp, sales", "IT Director", "RevOps Lead",
                        "Engineer", "", None, "Headhunter"])  # fmt: skip
    assert title_seniority(titles).tolist() == [1.0, 0.8, 0.6, 0.4, 0.2, 0.0, 0.0, 0.2]


def test_opportunity_scores_use_the_deal_and_the_account_fit() -> None:
    accounts = _accounts([{"external_id": "a", "industry": "Technology"}])
    account_scores = score_accounts(accounts, NO_OPPS, CONFIG, NOW)
    opportunities = _opps(
        [{"external_id": "o", "account_external_id": "a", "stage": "Negotiation/Review",
          "amount": 30_000, "close_date": "2024-07-01"}]
    )  # fmt: skip
    scored = score_opportunities(opportunities, account_scores, CONFIG, NOW)
    # stage 0.9 * 0.5 + amount 2/5 * 0.25 + future close date 1.0 * 0.25
    assert scored["engagement_score"].tolist() == [80.0]
    assert scored["fit_score"].tolist() == [40.0]
    assert scored["combined_score"].tolist() == [56.0]
    assert scored["tier"].tolist() == ["B"]


def test_custom_thresholds_change_tiers() -> None:
    accounts = _accounts([{"external_id": "a", "industry": "Technology"}])
    config = ScoringConfig(tier_a=24.0, tier_b=10.0, tier_c=5.0)
    assert score_accounts(accounts, NO_OPPS, config, NOW)["tier"].tolist() == ["A"]
    assert score_accounts(accounts, NO_OPPS, CONFIG, NOW)["tier"].tolist() == ["D"]


def test_now_is_normalised_to_utc_and_must_be_aware() -> None:
    accounts = _accounts([{"external_id": "a"}])
    local = NOW.astimezone(timezone(timedelta(hours=-5)))
    scored = score_accounts(accounts, NO_OPPS, CONFIG, local)
    assert scored["scored_at"].iloc[0] == pd.Timestamp(NOW)
    assert str(scored["scored_at"].dt.tz) == "UTC"
    with pytest.raises(ScoringInputError, match="timezone-aware"):
        score_accounts(accounts, NO_OPPS, CONFIG, NOW.replace(tzinfo=None))


def test_bad_inputs_get_clear_errors() -> None:
    with pytest.raises(ScoringInputError, match="accounts lack column"):
        score_accounts(pd.DataFrame({"external_id": ["a"]}), NO_OPPS, CONFIG, NOW)
    twice = _accounts([{"external_id": "a"}, {"external_id": "a"}])
    with pytest.raises(ScoringInputError, match="repeat external_id"):
        score_accounts(twice, NO_OPPS, CONFIG, NOW)
    with pytest.raises(ScoringInputError, match="account_scores"):
        score_persons(_persons([{"external_id": "p"}]), pd.DataFrame(), CONFIG, NOW)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fit_weight": 0.7}, "fit_weight \\+ engagement_weight must sum to 1"),
        ({"fit_weight": 1.5, "engagement_weight": -0.5}, "fit_weight must be a number in"),
        ({"industry_weight": 0.5}, "industry_weight \\+ employee_weight"),
        ({"stage_weight": 0.1}, "stage_weight \\+ amount_weight"),
        ({"seniority_weight": 2}, "seniority_weight must be a number in"),
        ({"tier_a": 50.0, "tier_b": 60.0}, "tier thresholds must descend"),
        ({"tier_c": -1.0}, "tier_c must be a number in \\[0, 100\\]"),
        ({"employee_bands": (10, 5)}, "employee_bands must be strictly ascending"),
        ({"revenue_bands": ()}, "revenue_bands must be a non-empty"),
        ({"recency_half_life_days": 0}, "recency_half_life_days must be a positive"),
        ({"industry_weights": {"Tech": 3}}, "industry_weights\\['Tech'\\]"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ScoringConfigError, match=message):
        ScoringConfig(**kwargs)


def test_config_is_immutable() -> None:
    config = ScoringConfig(industry_weights={"Tech": 1.0})
    with pytest.raises(TypeError):
        config.industry_weights["Tech"] = 0.0  # type: ignore[index]
