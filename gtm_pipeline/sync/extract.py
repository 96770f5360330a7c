"""Extraction: a SOQL query's pages as flat pandas DataFrames, one page in memory at a time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from gtm_pipeline.salesforce.client import SalesforceClient


@dataclass(frozen=True)
class RawPage:
    """One page of records, flattened: relationship and compound fields become dot-path columns."""

    frame: pd.DataFrame
    page_number: int
    total_size: int


def _is_noise(column: str) -> bool:
    return column == "attributes" or column.startswith("attributes.") or ".attributes." in column


def _nested_columns(frame: pd.DataFrame) -> list[str]:
    """Columns holding objects (relationships, compound fields): Salesforce gives a field one
    shape, an object or null, so the first value that is set tells."""
    nested = []
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        first = frame[column].first_valid_index()
        if first is not None and isinstance(frame.at[first, column], dict):
            nested.append(column)
    return nested


def flatten_records(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Nested objects (`Account.Industry`, `MailingAddress.city`) become dot-path columns.

    Flat fields go through `DataFrame.from_records` (C speed); only the object columns are
    normalised, which is where `json_normalize` over whole records spent its time. A parent that
    is null in every record stays as its own column, so its paths read as null downstream.
    """
    if not records:
        return pd.DataFrame()
    frame = pd.DataFrame.from_records(records)
    nested = _nested_columns(frame.drop(columns=["attributes"], errors="ignore"))
    flat = frame.drop(columns=["attributes", *nested], errors="ignore")
    expanded = [_expanded(frame[column]) for column in nested]
    return pd.concat([flat, *expanded], axis=1) if expanded else flat


def _expanded(objects: pd.Series) -> pd.DataFrame:
    """One object column as `<column>.<path>` columns; a null object gives nulls."""
    sub = pd.json_normalize([v if isinstance(v, dict) else {} for v in objects.tolist()], sep=".")
    sub.columns = [f"{objects.name}.{c}" for c in sub.columns]
    sub.index = objects.index
    sub = sub[[c for c in sub.columns if not _is_noise(c)]]
    if sub.columns.empty:  # only empty objects: keep the parent, so its paths read as null
        return pd.DataFrame({objects.name: [None] * len(objects)}, index=objects.index)
    return sub


def iter_raw_pages(
    client: SalesforceClient,
    soql: str,
    *,
    include_deleted: bool = False,
    batch_size: int | None = None,
) -> Iterator[RawPage]:
    for page in client.query_pages(soql, include_deleted=include_deleted, batch_size=batch_size):
        yield RawPage(flatten_records(page.records), page.page_number, page.total_size)
