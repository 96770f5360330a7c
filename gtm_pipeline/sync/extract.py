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


def flatten_records(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Nested objects (`Account.Industry`, `MailingAddress.city`) become dot-path columns."""
    if not records:
        return pd.DataFrame()
    frame = pd.json_normalize(records, sep=".")
    noise = [
        c
        for c in frame.columns
        if c == "attributes" or c.startswith("attributes.") or ".attributes." in c
    ]
    return frame.drop(columns=noise)


def iter_raw_pages(
    client: SalesforceClient,
    soql: str,
    *,
    include_deleted: bool = False,
    batch_size: int | None = None,
) -> Iterator[RawPage]:
    for page in client.query_pages(soql, include_deleted=include_deleted, batch_size=batch_size):
        yield RawPage(flatten_records(page.records), page.page_number, page.total_size)
