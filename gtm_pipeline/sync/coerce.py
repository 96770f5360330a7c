"""Vectorized parsing of the values Salesforce data really holds into numbers and dates.

Numbers arrive as JSON numbers, but dirty orgs also hold text such as "1,200", "$3.5M" or "12k".
Those are read; anything ambiguous ("1.200,50", "approx. 500", "N/A", "-") is left missing so the
type gate reports it instead of guessing. So is "inf"/"Infinity": no CRM amount is infinite, and
neither JSON nor the store's JSON columns can carry it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_THOUSANDS = r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$"
_SUFFIXED = r"^(-?\d+(?:\.\d+)?)\s*([kmb])$"
_MULTIPLIERS = {"k": 1e3, "m": 1e6, "b": 1e9}
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"


def _finite(numbers: pd.Series) -> pd.Series:
    return numbers.where(numbers.abs() < np.inf)


def to_number(values: pd.Series) -> pd.Series:
    """Float64 values; what cannot be read unambiguously (or is not finite) becomes missing."""
    direct = _finite(pd.to_numeric(values, errors="coerce").astype("Float64"))
    pending = values.notna() & direct.isna()
    if not pending.any():
        return direct
    text = values[pending].astype("str").str.strip().str.lower()
    text = text.str.replace(r"^[$€£]\s*", "", regex=True)
    thousands = text.str.match(_THOUSANDS)
    text = text.where(~thousands, text.str.replace(",", "", regex=False))
    parsed = pd.to_numeric(text, errors="coerce").astype("Float64")
    parts = text.str.extract(_SUFFIXED)
    scaled = pd.to_numeric(parts[0], errors="coerce") * parts[1].map(_MULTIPLIERS)
    parsed = parsed.fillna(scaled.astype("Float64"))
    result = direct.copy()
    result[pending] = _finite(parsed)
    return result


def to_date(values: pd.Series) -> pd.Series:
    """`YYYY-MM-DD` strings to datetime64 dates; impossible dates (2024-02-30) become missing."""
    text = values.astype("str").where(values.notna()).str.strip()
    text = text.where(text.str.match(_ISO_DATE).fillna(False).astype(bool))
    return pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")


def _iso_text(values: pd.Series) -> pd.Series:
    """Values as ISO 8601 text: strings as they are, dates and datetimes written out."""
    return values.map(lambda v: v.isoformat() if hasattr(v, "isoformat") else v, na_action="ignore")


def to_datetime_utc(values: pd.Series) -> pd.Series:
    """Salesforce dateTimes (`2024-01-01T10:00:00.000+0000`) and dates (`2024-01-01`, read as
    midnight UTC) to UTC timestamps; anything else becomes missing."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    text = _iso_text(values).astype("string").str.strip()
    return pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")


_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def _only_booleans(values: pd.Series) -> bool:
    """Whether every value present is a JSON boolean (a REST page's flags, held as objects)."""
    return pd.api.types.infer_dtype(values, skipna=True) == "boolean"


def to_boolean(values: pd.Series) -> pd.Series:
    """JSON booleans and their CSV spellings (`true`/`false`, any case, or 1/0) as a nullable
    boolean; anything else becomes missing."""
    if pd.api.types.is_bool_dtype(values.dtype) or _only_booleans(values):
        return values.astype("boolean")
    text = values.map(str, na_action="ignore").astype("string").str.strip().str.lower()
    result = pd.Series(pd.NA, index=values.index, dtype="boolean")
    result[text.isin(_TRUE).fillna(False).astype(bool)] = True
    result[text.isin(_FALSE).fillna(False).astype(bool)] = False
    return result
