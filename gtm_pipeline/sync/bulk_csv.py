"""Bulk API 2.0 extraction for large full syncs: the query, and CSV result sets as DataFrames.

A full sync whose REST count (`totalSize` of the first page) is above `SyncOptions.bulk_threshold`
(programs pass `GTM_BULK_THRESHOLD`, default 200,000, read by `config.bulk_threshold`) reads the
object through one `queryAll` Bulk job instead of REST pages: live and deleted rows together,
split by `IsDeleted`.

The frames handed to the transform/quality/load path must look like the REST path's, so a
tenant's data does not depend on which API read it. CSV knows only text, so every column is read
as text (no type guessing: `"007"` stays `"007"`, `"N/A"` stays `"N/A"`) and then converted by
the field's describe type, vectorized: numbers where they parse (the rest stay text for the
coercion gate, as REST's JSON would carry them), `true`/`false` to booleans, datetimes from
Bulk's `...000Z` to REST's `...000+0000`. Compound address fields cannot be selected in Bulk
queries; their components are selected instead and copied to the `MailingAddress.city`-style
columns REST's flattened JSON has.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from gtm_pipeline.salesforce.errors import BulkUnavailable
from gtm_pipeline.salesforce.metadata import DescribeClient, FieldInfo, describe_object
from gtm_pipeline.sync.entities import Entity, FieldMapping
from gtm_pipeline.sync.mapping import (
    ADDRESS_PARTS,
    is_address_compound,
    related_describes,
    selected_fields,
)
from gtm_pipeline.sync.soql import check_identifier, live_window, select_fields

NUMBER_TYPES = frozenset({"int", "double", "currency", "percent"})
_PARSE = pacsv.ParseOptions(newlines_in_values=True)


@dataclass(frozen=True)
class BulkPlan:
    """The Bulk query of one entity and how to turn its CSV into REST-shaped frames."""

    soql: str
    types: Mapping[str, str]
    """Lower-cased column name → Salesforce field type (absent: text)."""
    compounds: Mapping[str, str]
    """`MailingAddress.city`-style column → the component column it is copied from."""
    helper_columns: tuple[str, ...]
    """Components selected only to fill compounds; dropped so frames match REST's."""


def _components(compound: str, fields: Sequence[FieldInfo]) -> dict[str, str]:
    """`MailingAddress` → {"street": "MailingStreet", "city": "MailingCity", ...} from describe."""
    prefix = compound[: -len("Address")].lower()
    keys = {key.lower(): key for key, _ in ADDRESS_PARTS}
    found: dict[str, str] = {}
    for f in fields:
        if (f.compound_parent or "").lower() != compound.lower():
            continue
        if not f.name.lower().startswith(prefix):
            continue
        key = keys.get(f.name[len(prefix) :].lower())
        if key is not None:
            found[key] = f.name
    if set(found) != set(keys.values()):
        raise BulkUnavailable(
            f"cannot select the compound field {compound} by its components: describe does "
            "not list them all"
        )
    return found


def _field_type(
    path: str, fields: Sequence[FieldInfo], related: Mapping[str, list[FieldInfo]]
) -> str | None:
    """The describe type of a field path (`Account.Industry` through the relationship)."""
    current: Sequence[FieldInfo] | None = fields
    *hops, leaf = path.lower().split(".")
    for hop in hops:
        assert current is not None
        ref = next(
            (f for f in current if (f.relationship_name or "").lower() == hop and f.reference_to),
            None,
        )
        current = related.get(ref.reference_to[0]) if ref is not None else None
        if current is None:
            return None
    assert current is not None
    return next((f.type for f in current if f.name.lower() == leaf), None)


def plan_bulk_query(
    client: DescribeClient, entity: Entity, mappings: Sequence[FieldMapping]
) -> BulkPlan:
    """`SELECT <mapped fields, compounds by component>, SystemModstamp, IsDeleted FROM <object>`.

    No WHERE and no ORDER BY: a full read of live and deleted rows in whatever order Bulk
    returns them (the caller holds the cursor until the last result set).
    """
    fields = describe_object(client, entity.sf_object)
    related = related_describes(client, fields, mappings)
    wanted = selected_fields(entity, mappings)
    selected: list[str] = []
    compounds: dict[str, str] = {}
    for source in wanted:
        if not is_address_compound(source, fields):
            selected.append(source)
            continue
        for key, component in _components(source, fields).items():
            selected.append(component)
            compounds[f"{source}.{key}"] = component
    columns = select_fields(selected, "IsDeleted")
    direct = {s.lower() for s in wanted} | {"id", "systemmodstamp", "isdeleted"}
    helpers = tuple(c for c in columns if c.lower() not in direct)
    types = {c.lower(): t for c in columns if (t := _field_type(c, fields, related)) is not None}
    soql = f"SELECT {', '.join(columns)} FROM {check_identifier(entity.sf_object)}"  # noqa: S608
    return BulkPlan(soql, types, compounds, helpers)


def windowed(
    plan: BulkPlan, lower: datetime | None, upper: datetime | None, *, with_archived: bool
) -> str:
    """The plan's query narrowed to the live records of a stamp window (a slice's job)."""
    return plan.soql + live_window(lower, upper, with_archived=with_archived)


# --- CSV → DataFrame -----------------------------------------------------------------------


def _header(data: bytes) -> list[str]:
    end = data.find(b"\n")
    line = (data if end < 0 else data[:end]).decode("utf-8-sig").rstrip("\r")
    return next(csv.reader([line]), [])


def read_csv_table(data: bytes) -> pa.Table:
    """Every column as text, empty values (quoted or not) as missing: no guessing of types.

    Salesforce has no empty strings, so an empty CSV value is always a null.
    """
    names = _header(data)
    if not names:
        return pa.table({})
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in names},
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    return pacsv.read_csv(io.BytesIO(data), parse_options=_PARSE, convert_options=convert)


def read_csv_text(data: bytes) -> pd.DataFrame:
    """`read_csv_table` as a DataFrame."""
    table = read_csv_table(data)
    return table.to_pandas() if table.num_columns else pd.DataFrame()


def _numbers(text: pd.Series) -> pd.Series:
    """Numeric where every value parses (as REST's JSON numbers); else numbers mixed with the
    unparsable text, which the coercion gate reports."""
    parsed = pd.to_numeric(text, errors="coerce")
    unparsed = text.notna() & parsed.isna()
    if not unparsed.any():
        return parsed
    return parsed.astype("object").where(~unparsed, text.astype("object"))


def _booleans(text: pd.Series) -> pd.Series:
    flags = text.str.lower().map({"true": True, "false": False})
    return flags.astype(bool) if flags.notna().all() else flags.astype("object")


def _datetimes(text: pd.Series) -> pd.Series:
    return text.str.replace(r"Z$", "+0000", regex=True)


def conform(frame: pd.DataFrame, plan: BulkPlan) -> pd.DataFrame:
    """Text columns converted to the shapes REST's JSON gives, compounds filled, helpers gone."""
    out = frame.copy()
    for column in out.columns:
        kind = plan.types.get(str(column).lower())
        if kind in NUMBER_TYPES:
            out[column] = _numbers(out[column])
        elif kind == "boolean":
            out[column] = _booleans(out[column])
        elif kind == "datetime":
            out[column] = _datetimes(out[column])
    by_lower = {str(c).lower(): c for c in out.columns}
    for target, component in plan.compounds.items():
        source = by_lower.get(component.lower())
        out[target] = out[source] if source is not None else pd.NA
    helpers = [by_lower[h.lower()] for h in plan.helper_columns if h.lower() in by_lower]
    return out.drop(columns=helpers)


def read_result_set(data: bytes, plan: BulkPlan) -> pd.DataFrame:
    """One Bulk result set as a REST-shaped raw frame (live and deleted rows)."""
    return conform(read_csv_text(data), plan)


def split_deleted(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(live rows without the IsDeleted column, deleted rows' Id and SystemModstamp)."""
    if frame.empty or "IsDeleted" not in frame:
        return frame, frame.iloc[0:0]
    deleted = frame["IsDeleted"].fillna(False).astype(bool)
    live = frame.loc[~deleted].drop(columns=["IsDeleted"]).reset_index(drop=True)
    gone = frame.loc[deleted, ["Id", "SystemModstamp"]].reset_index(drop=True)
    return live, gone
