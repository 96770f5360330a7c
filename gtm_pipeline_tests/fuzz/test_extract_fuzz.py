"""Properties of flattening a REST page (sync/extract.py `flatten_records`).

Salesforce gives each field one shape across a page: a scalar, or an object (a relationship or a
compound field, possibly holding objects itself) that may be null in any record. For any such
page: one row per record in order; every leaf value is found under its dot path; a path a record
does not reach (its object is null) reads as null; no `attributes` column survives; and every
column is a leaf path of the page or a parent whose objects are all null or empty.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from gtm_pipeline.sync.extract import flatten_records
from gtm_pipeline_tests.fuzz.examples import ran
from gtm_pipeline_tests.fuzz.settings import fuzz

NAMES = st.from_regex(r"[A-Z][A-Za-z]{0,6}(__c)?", fullmatch=True)
SCALARS = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
Shape = dict[str, Any]  # field → "scalar" or a nested Shape


def shapes(depth: int = 2) -> st.SearchStrategy[Shape]:
    leaf = st.just("scalar")
    child = leaf if depth == 0 else st.one_of(leaf, st.deferred(lambda: shapes(depth - 1)))
    return st.dictionaries(NAMES.filter(lambda n: n != "attributes"), child, min_size=1, max_size=5)


def record(shape: Shape, nested: bool) -> st.SearchStrategy[dict[str, Any]]:
    fields = {
        name: SCALARS if kind == "scalar" else st.one_of(st.none(), record(kind, True))
        for name, kind in shape.items()
    }
    attributes = st.just({"type": "Contact", "url": "/x"}) if not nested else st.just({})
    return st.fixed_dictionaries({"attributes": attributes, **fields}).map(
        lambda r: r if r["attributes"] else {k: v for k, v in r.items() if k != "attributes"}
    )


def pages() -> st.SearchStrategy[tuple[Shape, list[dict[str, Any]]]]:
    return shapes().flatmap(
        lambda shape: st.tuples(
            st.just(shape), st.lists(record(shape, False), min_size=1, max_size=8)
        )
    )


def leaves(value: dict[str, Any], shape: Shape, prefix: str = "") -> dict[str, Any]:
    """Scalar fields this record reaches, by dot path (an object that is null reaches none)."""
    found: dict[str, Any] = {}
    for key, kind in shape.items():
        item, path = value[key], f"{prefix}{key}"
        if kind == "scalar":
            found[path] = item
        elif item is not None:
            found.update(leaves(item, kind, f"{path}."))
    return found


def is_null(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def same(value: Any, cell: Any) -> bool:
    """`cell` holds `value`: numbers may come back widened (a column with nulls is float)."""
    if isinstance(value, bool):
        return isinstance(cell, bool | np.bool_) and bool(cell) is value
    if isinstance(value, int | float):
        return not isinstance(cell, bool | np.bool_) and float(cell) == float(value)
    return isinstance(cell, str) and cell == value


@fuzz
@given(pages())
def test_every_leaf_is_under_its_path_and_nothing_else_appears(page) -> None:
    ran("extract: every leaf under its dot path")
    shape, records = page
    frame = flatten_records(records)
    assert len(frame) == len(records)
    assert not any(c == "attributes" or ".attributes" in c for c in frame.columns)
    assert not frame.columns.has_duplicates
    per_record = [leaves(r, shape) for r in records]
    all_paths = set().union(*per_record)
    for path in all_paths - set(frame.columns):
        raise AssertionError(f"leaf path {path} lost")
    for row, found in enumerate(per_record):
        for path in all_paths:
            cell = frame.at[row, path]
            value = found.get(path)  # absent: the record's object on the way is null
            if is_null(value):
                assert is_null(cell), (path, cell)
            else:
                assert same(value, cell), (path, value, cell)
    for column in set(frame.columns) - all_paths:
        # a parent never set in this page (null or empty everywhere): reads as null
        assert frame[column].map(is_null).all(), column
        assert not any(p.startswith(f"{column}.") for p in all_paths)
