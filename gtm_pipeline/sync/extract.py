"""Extraction: a SOQL query's pages as flat pandas DataFrames, one page in memory at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from gtm_pipeline.salesforce.client import SalesforceClient


@dataclass(frozen=True)
class FetchedPage:
    """One page of records as Salesforce returned them, flattened: relationship and compound
    fields become dot-path columns."""

    frame: pd.DataFrame
    page_number: int
    total_size: int


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

    Every level goes through `DataFrame.from_records` (C speed; `json_normalize` over whole
    records, and then over the object columns, was most of a page's flattening time). A parent
    that is null in every record stays as its own column, so its paths read as null downstream.
    """
    if not records:
        return pd.DataFrame()
    return _flattened(pd.DataFrame.from_records(records))


def _flattened(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.drop(columns=["attributes"], errors="ignore")
    nested = _nested_columns(frame)
    if not nested:
        return frame
    expanded = [_expanded(frame[column]) for column in nested]
    return pd.concat([frame.drop(columns=nested), *expanded], axis=1)


def _expanded(objects: pd.Series) -> pd.DataFrame:
    """One object column as `<column>.<path>` columns; a null object gives nulls."""
    rows = [value if isinstance(value, dict) else {} for value in objects.tolist()]
    sub = _flattened(pd.DataFrame.from_records(rows, index=objects.index))
    if sub.columns.empty:  # only empty objects: keep the parent, so its paths read as null
        return pd.DataFrame({objects.name: [None] * len(objects)}, index=objects.index)
    sub.columns = [f"{objects.name}.{column}" for column in sub.columns]
    return sub


def joined_pages(pages: Sequence[FetchedPage]) -> FetchedPage:
    """Pages as one, numbered and counted like the last of them."""
    if len(pages) == 1:
        return pages[0]
    frame = pd.concat([p.frame for p in pages], ignore_index=True)
    return FetchedPage(frame, pages[-1].page_number, pages[-1].total_size)


def iter_raw_pages(
    client: SalesforceClient,
    soql: str,
    *,
    include_deleted: bool = False,
    batch_size: int | None = None,
) -> Iterator[FetchedPage]:
    for page in client.query_pages(soql, include_deleted=include_deleted, batch_size=batch_size):
        yield FetchedPage(flatten_records(page.records), page.page_number, page.total_size)
