"""The fixed rules behind derived columns (`entities.Derived`): columns no single Salesforce field
fills. Vectorized and unable to fail, like the rest of the transform: a value they cannot read
is passed on as it came, for the type gate to report.

- `first_present`: the first of the fields that holds a value (an activity happened when it was
  completed, else when it was due, else when it was logged).
- `object_of_id`: the object a polymorphic Id points at (`WhoId`, `WhatId`), from its key prefix.
- `minutes_as_seconds`: a duration in minutes as seconds.
- `event_subtype`: an Event's `Type` in lower case; an Event without one is a meeting.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pyarrow
import pyarrow.compute as pc

from gtm_pipeline.sync.coerce import to_number
from gtm_pipeline.sync.entities import Derived, Entity
from gtm_pipeline.sync.mapping import source_column
from gtm_pipeline.sync.text import arrow_text, clean_text

KEY_PREFIX_OBJECTS = {
    "001": "Account",
    "003": "Contact",
    "006": "Opportunity",
    "00Q": "Lead",
    "500": "Case",
    "701": "Campaign",
    "800": "Contract",
}
"""Standard objects by the key prefix their Ids start with (documented by Salesforce, the same in
every org). An Id of another object (a custom one: its prefix differs between orgs) names none."""

Rule = Callable[[list[pd.Series]], pd.Series]


def _missing(values: pd.Series) -> pd.Series:
    """Missing, or blank once trimmed."""
    return clean_text(values).isna()


def first_present(values: list[pd.Series]) -> pd.Series:
    result = values[0].astype("object")
    for later in values[1:]:
        result = result.where(~_missing(result), later.astype("object"))
    return result.where(~_missing(result), None)


_PREFIXES = pyarrow.array(list(KEY_PREFIX_OBJECTS))
_PREFIXED_OBJECTS = pyarrow.array(list(KEY_PREFIX_OBJECTS.values()))


def object_of_id(values: list[pd.Series]) -> pd.Series:
    (ids,) = values
    text = arrow_text(ids).array.__arrow_array__()
    found = pc.index_in(pc.utf8_slice_codeunits(text, 0, 3), value_set=_PREFIXES)
    objects = _PREFIXED_OBJECTS.take(found).to_pylist()  # None where no prefix matched
    return pd.Series(objects, index=ids.index, dtype="object")


def minutes_as_seconds(values: list[pd.Series]) -> pd.Series:
    (minutes,) = values
    seconds = (to_number(minutes) * 60).astype("object")
    return seconds.where(seconds.notna(), minutes.astype("object"))  # unreadable: the gate says


def event_subtype(values: list[pd.Series]) -> pd.Series:
    (kind,) = values
    text = kind.astype("string").str.strip().str.lower()
    return text.where(text.notna() & (text != ""), "meeting").astype("object")


RULES: dict[str, Rule] = {
    "first_present": first_present,
    "object_of_id": object_of_id,
    "minutes_as_seconds": minutes_as_seconds,
    "event_subtype": event_subtype,
}


def _inputs(derived: Derived, raw: pd.DataFrame, mapped: pd.DataFrame) -> list[pd.Series]:
    """The rule's inputs; a field the page lacks (null in every record of a Bulk result set, or
    left out by a tenant's mapping) is read as missing."""
    empty = pd.Series(None, index=raw.index, dtype="object")
    fields = [source_column(raw, f) for f in derived.fields]
    return [empty if f is None else f for f in fields] + [
        mapped.get(c, empty) for c in derived.columns
    ]


def add_derived(entity: Entity, raw: pd.DataFrame, mapped: pd.DataFrame) -> pd.DataFrame:
    """`mapped` with the entity's derived columns, computed from `raw` and the mapped columns."""
    if not entity.derived:
        return mapped
    out = mapped.copy()
    for derived in entity.derived:
        out[derived.target] = RULES[derived.rule](_inputs(derived, raw, out)).to_numpy()
    return out
