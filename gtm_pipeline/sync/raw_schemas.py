"""Pandera schemas of the raw Salesforce records, checked before anything is mapped.

They hold Salesforce to its side of the contract (an 18- or 15-character Id, a parsable
`SystemModstamp`, Ids in reference fields) and keep every other column, so custom fields pass
through. Field values themselves (an "N/A" in NumberOfEmployees) are the quality gates' business.
A record that breaks the contract is quarantined under the stage `raw_schema`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors
from pandera.typing import Series

from gtm_pipeline.sync.entities import Entity

RAW_SCHEMA = "raw_schema"
SALESFORCE_ID = r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$"
SALESFORCE_DATETIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})$"


class SalesforceRecordSchema(pa.DataFrameModel):
    """What every synced record carries.

    The Id-like columns are declared without a dtype (`Series[Any]`): `validate_raw` hands them
    over as text (`_contract_as_text`) and their patterns are the contract. Pandera 0.35 checks a
    `str` dtype element by element and formats a failure table even when every element passes:
    that alone was half the cost of validating a page of ten records.
    """

    Id: Series[Any] = pa.Field(nullable=False, str_matches=SALESFORCE_ID)
    SystemModstamp: Series[Any] = pa.Field(nullable=False, str_matches=SALESFORCE_DATETIME)
    IsDeleted: Series[bool] | None = pa.Field(nullable=True)

    class Config:
        strict = False  # unknown (custom) columns are kept
        coerce = False


class SalesforceAccountSchema(SalesforceRecordSchema):
    pass


class SalesforceContactSchema(SalesforceRecordSchema):
    AccountId: Series[Any] | None = pa.Field(nullable=True, str_matches=SALESFORCE_ID)


class SalesforceLeadSchema(SalesforceRecordSchema):
    """A converted Lead names the Contact and Account it became."""

    ConvertedContactId: Series[Any] | None = pa.Field(nullable=True, str_matches=SALESFORCE_ID)
    ConvertedAccountId: Series[Any] | None = pa.Field(nullable=True, str_matches=SALESFORCE_ID)


class SalesforceOpportunitySchema(SalesforceRecordSchema):
    AccountId: Series[Any] | None = pa.Field(nullable=True, str_matches=SALESFORCE_ID)


class SalesforceActivitySchema(SalesforceRecordSchema):
    """Tasks and Events: the person (`WhoId`) and record (`WhatId`) they are about are Ids of
    whichever object, the account derived by Salesforce."""

    WhoId: Series[Any] | None = pa.Field(nullable=True, str_matches=SALESFORCE_ID)
    WhatId: Series[Any] | None = pa.Field(nullable=True, str_matches=SALESFORCE_ID)
    AccountId: Series[Any] | None = pa.Field(nullable=True, str_matches=SALESFORCE_ID)


RAW_SCHEMAS: dict[str, type[SalesforceRecordSchema]] = {
    "Account": SalesforceAccountSchema,
    "Contact": SalesforceContactSchema,
    "Lead": SalesforceLeadSchema,
    "Opportunity": SalesforceOpportunitySchema,
    "Task": SalesforceActivitySchema,
    "Event": SalesforceActivitySchema,
}


CONTRACT_TEXT = (
    "Id",
    "SystemModstamp",
    "AccountId",
    "WhoId",
    "WhatId",
    "ConvertedContactId",
    "ConvertedAccountId",
)
NO_FAILURES = ("row", "external_id", "stage", "field", "reason")


def _contract_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Contract columns as text, nulls kept: a number where an Id belongs (never sent by
    Salesforce, but possible from a broken proxy) then fails its pattern and is quarantined
    with its value, instead of failing the dtype check of the whole column."""
    columns = [c for c in CONTRACT_TEXT if c in frame.columns]
    if all(pd.api.types.is_string_dtype(frame[c]) for c in columns):
        return frame
    return frame.assign(**{c: frame[c].astype("str") for c in columns})


def validate_raw(entity: Entity, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows that keep the contract, and one failure row (row, external_id, field, reason)
    for each that does not."""
    schema = RAW_SCHEMAS[entity.sf_object]
    if frame.empty:
        return frame, pd.DataFrame(columns=list(NO_FAILURES))
    frame = _contract_as_text(frame)
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        missing_columns = cases[cases["index"].isna()]
        if not missing_columns.empty:
            raise ValueError(
                f"Salesforce {entity.sf_object} records lack required column(s): "
                + ", ".join(sorted(set(missing_columns["failure_case"].astype(str))))
            ) from None
        cases = cases.drop_duplicates("index").astype({"index": int})
        rows = pd.Index(cases["index"])
        failures = pd.DataFrame(
            {
                "row": rows,
                "external_id": frame.loc[rows, "Id"].to_numpy(),
                "stage": RAW_SCHEMA,
                "field": cases["column"].to_numpy(),
                "reason": (
                    cases["column"].astype(str)
                    + ": "
                    + cases["failure_case"].astype(str).str.slice(0, 60).map(repr)
                    + " is not a valid Salesforce value ("
                    + cases["check"].astype(str)
                    + ")"
                ).to_numpy(),
            }
        )
        return frame.drop(index=rows), failures
    return frame, pd.DataFrame(columns=list(NO_FAILURES))
