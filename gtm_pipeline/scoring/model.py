"""The reference scoring model: fit from firmographics, engagement from deals and activities.

A small, transparent model so every score can be explained from the row it came from. Pure and
vectorised: DataFrames in, one DataFrame of scores out, no I/O and no clock (`now` is passed in),
so the same inputs always give the same scores. A tenant wanting something else writes its own
asset into the same `scores` table; nothing downstream depends on how these numbers are made.

Scores are on 0-100. Every component below is first brought to 0-1 and then weighted.

Fit (accounts; persons and opportunities inherit their account's fit):
    fit = 100 * (w_industry * industry + w_employees * employee_band + w_revenue * revenue_band)
    - industry: `INDUSTRY_WEIGHTS` (the emulator's and Salesforce's standard picklist values);
      an industry not in the table, or none, scores `unknown_industry_weight`.
    - bands: the share of the band edges a value reaches (`searchsorted(edges, v, 'right') /
      len(edges)`), so a bigger company never scores lower; a missing value scores 0.

Engagement (accounts):
    engagement = (1 - activity_weight) * deal + activity_weight * 100 * activity
    deal = 100 * (w_stage * stage + w_amount * amount_band + w_recency * recency)
    - stage: the stage's progress in `STAGE_PROGRESS` (Salesforce's default probabilities;
      Closed Lost is 0); an unknown stage is 0.
    - amount: the band share of the amount (for an account: the sum over its open and won
      opportunities, since lost money says nothing about intent).
    - recency: exp(-ln2 * days_since_close / half_life); a close date today or in the future
      is 1, a missing one 0. For an account, stage and recency are the best over its
      opportunities. An account with no live opportunity has a deal part of 0.
    - activity: `scoring/activities.py` over the account's activities (their AccountId) of the
      last `activity_window_days`: frequency weighted by subtype (meeting > call > email >
      other) and recency of the latest; 0 without one.
    Persons: (1 - seniority_weight - activity_weight) * account engagement + seniority_weight *
    100 * seniority + activity_weight * 100 * activity, where seniority comes from the title by
    `SENIORITY_RULES` (first matching rule wins) and activity is over the person's own
    activities (their WhoId). Leads are scored as persons (entity type `lead`); an unconverted
    Lead has no account, so its fit is 0 and only seniority and activities count.
    Opportunities: the deal part of the opportunity alone.

combined = fit_weight * fit + engagement_weight * engagement; all three are rounded to 2
decimals and the tier is read from the rounded combined score, so a stored row's tier always
agrees with its stored score: A if combined >= tier_a, else B if >= tier_b, else C if >= tier_c,
else D. Rows marked `is_deleted` are neither scored nor counted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

import numpy as np
import pandas as pd

from gtm_pipeline.errors import GtmError
from gtm_pipeline.scoring.activities import (
    ACTIVITY_COLUMNS,
    ACTIVITY_WEIGHTS,
    activity_levels,
    engagement_of,
)
from gtm_pipeline.store.scoring import SCORE_COLUMNS, SCORE_ENTITY_TYPES
from gtm_pipeline.sync.entities import ACCOUNTS, LEADS, OPPORTUNITIES, PERSONS

# The `scores` table is the contract (a tenant's own model writes the same table), so its
# columns and entity types are defined once, by the store.
ENTITY_TYPES = SCORE_ENTITY_TYPES
TIERS = ("A", "B", "C", "D")

# How attractive an industry is to the reference seller (a B2B software vendor), 0-1.
INDUSTRY_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "Technology": 1.0,
        "Finance": 0.9,
        "Banking": 0.9,
        "Insurance": 0.85,
        "Telecommunications": 0.85,
        "Communications": 0.8,
        "Healthcare": 0.8,
        "Biotechnology": 0.75,
        "Electronics": 0.75,
        "Consulting": 0.7,
        "Media": 0.65,
        "Manufacturing": 0.6,
        "Energy": 0.6,
        "Utilities": 0.55,
        "Engineering": 0.55,
        "Retail": 0.55,
        "Transportation": 0.5,
        "Shipping": 0.5,
        "Machinery": 0.45,
        "Chemicals": 0.45,
        "Entertainment": 0.45,
        "Education": 0.4,
        "Government": 0.4,
        "Hospitality": 0.35,
        "Food & Beverage": 0.35,
        "Apparel": 0.3,
        "Construction": 0.3,
        "Environmental": 0.3,
        "Recreation": 0.25,
        "Agriculture": 0.2,
        "Not For Profit": 0.2,
        "Other": 0.2,
    }
)

# Salesforce's default stage probabilities as progress 0-1.
STAGE_PROGRESS: Mapping[str, float] = MappingProxyType(
    {
        "Prospecting": 0.10,
        "Qualification": 0.10,
        "Needs Analysis": 0.20,
        "Value Proposition": 0.50,
        "Id. Decision Makers": 0.60,
        "Perception Analysis": 0.70,
        "Proposal/Price Quote": 0.75,
        "Negotiation/Review": 0.90,
        "Closed Won": 1.0,
        "Closed Lost": 0.0,
    }
)
LOST_STAGES = frozenset({"Closed Lost"})

# Title patterns, most senior first; a title matching none scores `OTHER_TITLE_SENIORITY`.
SENIORITY_RULES: tuple[tuple[str, float], ...] = (
    (r"\b(?:ceo|cto|cfo|coo|cio|cmo|cro|chief|founder|owner|president)\b", 1.0),
    (r"\b(?:vp|svp|evp|vice president|head)\b", 0.8),
    (r"\b(?:director)\b", 0.6),
    (r"\b(?:manager|lead)\b", 0.4),
)
OTHER_TITLE_SENIORITY = 0.2
_SENIORITY_PATTERNS = tuple((re.compile(p, re.IGNORECASE), s) for p, s in SENIORITY_RULES)


class ScoringConfigError(GtmError, ValueError):
    """A scoring configuration that would produce meaningless scores."""

    retryable = False


class ScoringInputError(GtmError, ValueError):
    """Input frames the model cannot score (missing columns, repeated ids, bad `now`)."""

    retryable = False


def _unit(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ScoringConfigError(f"{name} must be a number in [0, 1], got {value!r}")


def _sums_to_one(names: str, values: tuple[float, ...]) -> None:
    if not math.isclose(sum(values), 1.0, abs_tol=1e-9):
        raise ScoringConfigError(f"{names} must sum to 1, got {sum(values):g}")


def _positive(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not (0 < value < math.inf):
        raise ScoringConfigError(f"{name} must be a positive number, got {value!r}")


def _ascending_edges(name: str, edges: tuple[float, ...]) -> None:
    if not edges or any(not math.isfinite(e) for e in edges):
        raise ScoringConfigError(f"{name} must be a non-empty tuple of finite numbers")
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ScoringConfigError(f"{name} must be strictly ascending, got {edges}")


@dataclass(frozen=True)
class ScoringConfig:
    """Weights, thresholds and bands of the model; validated on construction."""

    fit_weight: float = 0.6
    engagement_weight: float = 0.4
    industry_weight: float = 0.4
    employee_weight: float = 0.3
    revenue_weight: float = 0.3
    stage_weight: float = 0.5
    amount_weight: float = 0.25
    recency_weight: float = 0.25
    seniority_weight: float = 0.3
    unknown_industry_weight: float = 0.2
    tier_a: float = 75.0
    tier_b: float = 50.0
    tier_c: float = 25.0
    employee_bands: tuple[float, ...] = (10, 50, 200, 1_000, 5_000, 20_000)
    revenue_bands: tuple[float, ...] = (1e6, 1e7, 5e7, 2.5e8, 1e9, 5e9)
    amount_bands: tuple[float, ...] = (5e3, 25e3, 1e5, 5e5, 1e6)
    recency_half_life_days: float = 180.0
    activity_weight: float = 0.3
    activity_window_days: float = 90.0
    activity_half_life_days: float = 14.0
    activity_saturation: float = 5.0
    """The weighted activity count at which frequency reaches 1 - 1/e (63%)."""
    industry_weights: Mapping[str, float] = field(default_factory=lambda: INDUSTRY_WEIGHTS)
    activity_weights: Mapping[str, float] = field(default_factory=lambda: ACTIVITY_WEIGHTS)

    def __post_init__(self) -> None:
        for name in (
            "fit_weight",
            "engagement_weight",
            "industry_weight",
            "employee_weight",
            "revenue_weight",
            "stage_weight",
            "amount_weight",
            "recency_weight",
            "seniority_weight",
            "unknown_industry_weight",
            "activity_weight",
        ):
            _unit(name, getattr(self, name))
        if self.seniority_weight + self.activity_weight > 1.0 + 1e-9:
            raise ScoringConfigError("seniority_weight + activity_weight must not exceed 1")
        _sums_to_one("fit_weight + engagement_weight", (self.fit_weight, self.engagement_weight))
        _sums_to_one(
            "industry_weight + employee_weight + revenue_weight",
            (self.industry_weight, self.employee_weight, self.revenue_weight),
        )
        _sums_to_one(
            "stage_weight + amount_weight + recency_weight",
            (self.stage_weight, self.amount_weight, self.recency_weight),
        )
        self._check_tiers()
        for name in ("employee_bands", "revenue_bands", "amount_bands"):
            _ascending_edges(name, tuple(getattr(self, name)))
        for name in (
            "recency_half_life_days",
            "activity_window_days",
            "activity_half_life_days",
            "activity_saturation",
        ):
            _positive(name, getattr(self, name))
        for industry, weight in self.industry_weights.items():
            _unit(f"industry_weights[{industry!r}]", weight)
        object.__setattr__(self, "industry_weights", MappingProxyType(dict(self.industry_weights)))
        if set(self.activity_weights) != set(ACTIVITY_WEIGHTS):
            raise ScoringConfigError(
                f"activity_weights must weigh exactly {', '.join(ACTIVITY_WEIGHTS)}"
            )
        for group, weight in self.activity_weights.items():
            _unit(f"activity_weights[{group!r}]", weight)
        object.__setattr__(self, "activity_weights", MappingProxyType(dict(self.activity_weights)))

    def _check_tiers(self) -> None:
        tiers = (self.tier_a, self.tier_b, self.tier_c)
        for name, value in zip(("tier_a", "tier_b", "tier_c"), tiers, strict=True):
            if not isinstance(value, int | float) or not 0.0 <= float(value) <= 100.0:
                raise ScoringConfigError(f"{name} must be a number in [0, 100], got {value!r}")
        if not self.tier_a > self.tier_b > self.tier_c:
            raise ScoringConfigError(
                f"tier thresholds must descend (tier_a > tier_b > tier_c), got {tiers}"
            )

    def tier_for(self, combined: pd.Series) -> pd.Series:
        """The tier of each combined score, by the thresholds."""
        conditions = [
            combined >= self.tier_a,
            combined >= self.tier_b,
            combined >= self.tier_c,
        ]
        tiers = np.select(conditions, list(TIERS[:3]), default=TIERS[3])
        return pd.Series(tiers, index=combined.index, dtype=object)


ACCOUNT_COLUMNS = ("external_id", "industry", "employee_count", "annual_revenue")
PERSON_COLUMNS = ("external_id", "account_external_id", "title")
OPPORTUNITY_COLUMNS = ("external_id", "account_external_id", "stage", "amount", "close_date")


def score_accounts(
    accounts: pd.DataFrame,
    opportunities: pd.DataFrame,
    config: ScoringConfig,
    now: datetime,
    activities: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Score live accounts: fit from firmographics, engagement from their live opportunities
    and their activities (none when `activities` is None)."""
    stamp = _utc(now)
    live = _live(accounts, ACCOUNT_COLUMNS, "accounts")
    fit = _fit(live, config)
    opps = _opportunity_components(
        _live(opportunities, OPPORTUNITY_COLUMNS, "opportunities"), config, stamp
    )
    deal = _account_engagement(live["external_id"], opps, config)
    activity = _activity(live["external_id"], activities, "account_external_id", config, stamp)
    weight = config.activity_weight
    engagement = (1.0 - weight) * deal + weight * 100.0 * activity
    return _result(ACCOUNTS.score_type, live["external_id"], fit, engagement, config, stamp)


def score_opportunities(
    opportunities: pd.DataFrame,
    account_scores: pd.DataFrame,
    config: ScoringConfig,
    now: datetime,
) -> pd.DataFrame:
    """Score live opportunities: their account's fit, engagement from the deal itself."""
    stamp = _utc(now)
    live = _live(opportunities, OPPORTUNITY_COLUMNS, "opportunities")
    parts = _opportunity_components(live, config, stamp)
    engagement = 100.0 * (
        config.stage_weight * parts["stage"]
        + config.amount_weight * parts["amount_band"]
        + config.recency_weight * parts["recency"]
    )
    fit = _inherited(live["account_external_id"], account_scores, "fit_score")
    return _result(OPPORTUNITIES.score_type, live["external_id"], fit, engagement, config, stamp)


def score_persons(
    persons: pd.DataFrame,
    account_scores: pd.DataFrame,
    config: ScoringConfig,
    now: datetime,
    activities: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Score live persons: their account's fit; its engagement blended with title seniority and
    the person's own activities (none when `activities` is None).

    A person with no scored account (none, deleted or unknown) has fit 0 and account
    engagement 0, so only their seniority and activities count: so it is for a Lead, which has
    no account until it converts. Rows whose `source_object` is `Lead` are scored as leads, the
    others (and every row of a frame without that column) as Contacts.
    """
    stamp = _utc(now)
    live = _live(persons, PERSON_COLUMNS, "persons")
    fit = _inherited(live["account_external_id"], account_scores, "fit_score")
    account_engagement = _inherited(live["account_external_id"], account_scores, "engagement_score")
    seniority = title_seniority(live["title"])
    activity = _activity(live["external_id"], activities, "who_external_id", config, stamp)
    senior, active = config.seniority_weight, config.activity_weight
    engagement = (
        (1.0 - senior - active) * account_engagement
        + senior * 100.0 * seniority
        + active * 100.0 * activity
    )
    return _result(_person_types(live), live["external_id"], fit, engagement, config, stamp)


def _person_types(persons: pd.DataFrame) -> pd.Series:
    """Each person's score entity type: a lead's for Leads, a person's for Contacts."""
    if "source_object" not in persons.columns:
        return pd.Series(PERSONS.score_type, index=persons.index, dtype=object)
    is_lead = persons["source_object"].astype("string").eq(LEADS.sf_object).fillna(False)
    types = np.where(is_lead.astype(bool), LEADS.score_type, PERSONS.score_type)
    return pd.Series(types, index=persons.index, dtype=object)


def score_all(
    accounts: pd.DataFrame,
    persons: pd.DataFrame,
    opportunities: pd.DataFrame,
    config: ScoringConfig,
    now: datetime,
    activities: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every entity's scores in one frame (accounts, then persons and leads, then
    opportunities)."""
    account_scores = score_accounts(accounts, opportunities, config, now, activities)
    frames = [
        account_scores,
        score_persons(persons, account_scores, config, now, activities),
        score_opportunities(opportunities, account_scores, config, now),
    ]
    return pd.concat(frames, ignore_index=True)


def title_seniority(titles: pd.Series) -> pd.Series:
    """Seniority 0-1 per title by `SENIORITY_RULES`; a missing or blank title is 0."""
    text = titles.astype("string").str.strip()
    result = pd.Series(OTHER_TITLE_SENIORITY, index=titles.index, dtype="float64")
    result[text.isna() | (text == "")] = 0.0
    matched = pd.Series(False, index=titles.index)
    for pattern, value in _SENIORITY_PATTERNS:
        hit = text.str.contains(pattern, na=False).astype(bool) & ~matched
        result[hit] = value
        matched |= hit
    return result


def _utc(now: datetime) -> pd.Timestamp:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ScoringInputError("now must be a timezone-aware datetime (e.g. tzinfo=UTC)")
    return pd.Timestamp(now.astimezone(UTC))


def _live(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    """The rows not marked deleted, with their index reset; clear errors for unusable frames."""
    if not isinstance(frame, pd.DataFrame):
        raise ScoringInputError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise ScoringInputError(f"{what} lack column(s) {', '.join(missing)}")
    if "is_deleted" in frame.columns:
        deleted = frame["is_deleted"].astype("boolean").fillna(False).astype(bool)
        frame = frame[~deleted]
    frame = frame.reset_index(drop=True)
    ids = frame["external_id"]
    if ids.isna().any():
        raise ScoringInputError(f"{what} have rows without an external_id")
    if ids.duplicated().any():
        repeated = sorted(ids[ids.duplicated()].astype(str).unique())[:5]
        raise ScoringInputError(f"{what} repeat external_id(s): {', '.join(repeated)}")
    return frame


def _numeric(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce").astype("float64")


def _band_share(values: pd.Series, edges: tuple[float, ...]) -> pd.Series:
    """The share of `edges` each value reaches; 0 for missing values."""
    numbers = _numeric(values)
    filled = numbers.fillna(-np.inf).to_numpy()
    reached = np.searchsorted(np.asarray(edges, dtype="float64"), filled, side="right")
    return pd.Series(reached / len(edges), index=values.index, dtype="float64")


def _fit(accounts: pd.DataFrame, config: ScoringConfig) -> pd.Series:
    industry = (
        accounts["industry"]
        .map(dict(config.industry_weights))
        .astype("float64")
        .fillna(config.unknown_industry_weight)
    )
    return 100.0 * (
        config.industry_weight * industry
        + config.employee_weight * _band_share(accounts["employee_count"], config.employee_bands)
        + config.revenue_weight * _band_share(accounts["annual_revenue"], config.revenue_bands)
    )


def _opportunity_components(
    opportunities: pd.DataFrame, config: ScoringConfig, now: pd.Timestamp
) -> pd.DataFrame:
    """Per opportunity: stage progress, amount band, recency (each 0-1) and counted amount."""
    stage = opportunities["stage"].map(dict(STAGE_PROGRESS)).astype("float64").fillna(0.0)
    close = pd.to_datetime(opportunities["close_date"], errors="coerce")
    if isinstance(close.dtype, pd.DatetimeTZDtype):
        close = close.dt.tz_convert("UTC").dt.tz_localize(None)
    today = now.tz_convert("UTC").tz_localize(None).normalize()
    days = ((today - close) / pd.Timedelta(days=1)).clip(lower=0.0)
    recency = np.exp(-math.log(2) * days / config.recency_half_life_days).fillna(0.0)
    amount = _numeric(opportunities["amount"])
    lost = opportunities["stage"].isin(LOST_STAGES)
    return pd.DataFrame(
        {
            "account_external_id": opportunities["account_external_id"],
            "stage": stage,
            "amount_band": _band_share(amount, config.amount_bands),
            "recency": recency.astype("float64"),
            "counted_amount": amount.where(~lost, 0.0).fillna(0.0),
        }
    )


def _account_engagement(
    account_ids: pd.Series, opportunities: pd.DataFrame, config: ScoringConfig
) -> pd.Series:
    grouped = opportunities.dropna(subset=["account_external_id"]).groupby(
        "account_external_id", sort=False
    )
    per_account = grouped.agg(
        stage=("stage", "max"), recency=("recency", "max"), amount=("counted_amount", "sum")
    )
    stage = account_ids.map(per_account["stage"]).astype("float64").fillna(0.0)
    recency = account_ids.map(per_account["recency"]).astype("float64").fillna(0.0)
    amount = account_ids.map(per_account["amount"]).astype("float64")
    amount = amount.where(amount > 0)
    return 100.0 * (
        config.stage_weight * stage
        + config.amount_weight * _band_share(amount, config.amount_bands)
        + config.recency_weight * recency
    )


def _activity(
    keys: pd.Series,
    activities: pd.DataFrame | None,
    by: str,
    config: ScoringConfig,
    now: pd.Timestamp,
) -> pd.Series:
    """Each key's activity 0-1 (`scoring/activities.py`) over the live activities."""
    if activities is None:
        return pd.Series(0.0, index=keys.index)
    levels = activity_levels(
        _live(activities, ACTIVITY_COLUMNS, "activities"),
        by,
        now=now,
        window_days=config.activity_window_days,
        half_life_days=config.activity_half_life_days,
        saturation=config.activity_saturation,
        weights=config.activity_weights,
    )
    return engagement_of(keys, levels)


def _inherited(account_ids: pd.Series, account_scores: pd.DataFrame, column: str) -> pd.Series:
    if not isinstance(account_scores, pd.DataFrame) or not {"external_id", column} <= set(
        account_scores.columns
    ):
        raise ScoringInputError(
            f"account_scores must be a DataFrame with external_id and {column} "
            "(the output of score_accounts)"
        )
    lookup = account_scores.drop_duplicates("external_id").set_index("external_id")[column]
    return account_ids.map(lookup).astype("float64").fillna(0.0)


def _result(
    entity_type: str | pd.Series,
    external_ids: pd.Series,
    fit: pd.Series,
    engagement: pd.Series,
    config: ScoringConfig,
    now: pd.Timestamp,
) -> pd.DataFrame:
    """The output frame: clipped, rounded scores and tiers read from the rounded score."""
    fit = fit.clip(0.0, 100.0).round(2)
    engagement = engagement.clip(0.0, 100.0).round(2)
    combined = (config.fit_weight * fit + config.engagement_weight * engagement).clip(0.0, 100.0)
    combined = combined.round(2)
    frame = pd.DataFrame(
        {
            "entity_type": pd.Series(entity_type, index=external_ids.index, dtype=object),
            "external_id": external_ids.astype(str).astype(object),
            "fit_score": fit.astype("float64"),
            "engagement_score": engagement.astype("float64"),
            "combined_score": combined.astype("float64"),
            "tier": config.tier_for(combined),
            "scored_at": pd.Series(now, index=external_ids.index, dtype="datetime64[us, UTC]"),
        },
        columns=list(SCORE_COLUMNS),
    )
    return frame.sort_values("external_id", kind="stable").reset_index(drop=True)
