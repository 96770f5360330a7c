"""Engagement from activities: how much, and how lately, a person or an account was engaged.

Over the activities that happened within the window before `now` (Tasks and Events alike,
`occurred_at` as the sync derived it; future ones have not happened yet):

    activity = 0.5 * frequency + 0.5 * recency                      (0-1)
    frequency = 1 - exp(-weighted_count / activity_saturation)
    recency = exp(-ln2 * days_since_the_latest / activity_half_life_days)

`weighted_count` adds each activity's subtype weight: a meeting says more than a call, a call
more than an email, an email more than anything else (`ACTIVITY_WEIGHTS`). A person's activities
are those whose `WhoId` is the person; an account's, those whose `AccountId` is the account (which
Salesforce derives from the person or the record the activity is about). No activity in the
window: 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import pandas as pd

SUBTYPE_GROUPS: Mapping[str, str] = MappingProxyType(
    {"meeting": "meeting", "call": "call", "email": "email", "listemail": "email"}
)
"""Activity subtypes (Task `TaskSubtype`, Event `Type`, lowercased) by weight group; any other
subtype (a plain task, a cadence step, a LinkedIn message) is `other`."""
ACTIVITY_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"meeting": 1.0, "call": 0.6, "email": 0.3, "other": 0.15}
)
ACTIVITY_COLUMNS = (
    "external_id",
    "who_external_id",
    "account_external_id",
    "subtype",
    "occurred_at",
)


def subtype_weights(subtypes: pd.Series, weights: Mapping[str, float]) -> pd.Series:
    """Each activity's weight from its subtype's group."""
    groups = subtypes.astype("string").str.strip().str.lower().map(SUBTYPE_GROUPS).fillna("other")
    return groups.map(weights).astype("float64").fillna(weights["other"])


def activity_levels(
    activities: pd.DataFrame,
    by: str,
    *,
    now: pd.Timestamp,
    window_days: float,
    half_life_days: float,
    saturation: float,
    weights: Mapping[str, float],
) -> pd.Series:
    """Activity 0-1 per value of the `by` column (who_external_id or account_external_id)."""
    occurred = pd.to_datetime(activities["occurred_at"], utc=True)
    in_window = (occurred <= now) & (occurred > now - pd.Timedelta(days=window_days))
    recent = activities.loc[in_window & activities[by].notna(), [by]].assign(
        weight=subtype_weights(activities.loc[in_window, "subtype"], weights),
        occurred=occurred[in_window],
    )
    if recent.empty:
        return pd.Series(dtype="float64")
    grouped = recent.groupby(by, sort=False)
    frequency = 1.0 - np.exp(-grouped["weight"].sum() / saturation)
    days = (now - grouped["occurred"].max()).dt.total_seconds() / 86_400.0
    recency = np.exp(-math.log(2) * days / half_life_days)
    return (0.5 * frequency + 0.5 * recency).astype("float64")


def engagement_of(keys: pd.Series, levels: pd.Series) -> pd.Series:
    """The activity level of each key (0 for a key with no activity in the window)."""
    return keys.map(levels).astype("float64").fillna(0.0)
