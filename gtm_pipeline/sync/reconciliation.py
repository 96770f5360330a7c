"""Reconciliation: prove the store equals Salesforce, and repair it where it does not.

Incremental syncs cannot see everything: a record deleted and purged between two syncs is never
returned again, and a commit that becomes visible later than the lookback is behind the cursor.
Reconciliation reads every record's `Id, SystemModstamp, IsDeleted` (and `IsArchived` for the
activities, whose archiving Salesforce does not document as a change of stamp) through queryAll
(REST pages, or one Id-only Bulk API 2.0 job when the store holds more records than the Bulk
threshold), compares them with the versions the store holds (rows and quarantine entries) and
classifies the drift:

- missing: in Salesforce (live, or in the recycle bin), nowhere in the store;
- stale: the store holds an older version (a row, a quarantine entry, or both at once), or a row
  or quarantine entry whose archive flag Salesforce has since changed;
- ghosts: live in the store (a row or a quarantine entry) but deleted in Salesforce, or absent
  even from queryAll (purged);
- wrongly_deleted: flagged deleted in the store, live in Salesforce (undeleted).

Unless it is a dry run it repairs: live records that are missing, stale or wrongly deleted are
read again by Id (chunked `WHERE Id IN (...)` queries) and go through the same gates and load as
a sync; records deleted in Salesforce are flagged with their deletion stamp; purged ones are
flagged `purged`. Each page commits on its own; the sync cursor never moves. The store is then
compared again with the same listing: what is left is drift that the repair could not fix (a
record changed or deleted while it ran, or the API budget stopped it). An object the integration
user may not read (`sync/access.py`) is not compared: the result says why (`not_readable`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from gtm_pipeline.config import DEFAULT_BULK_THRESHOLD
from gtm_pipeline.salesforce.bulk_jobs import BulkPollPolicy, BulkQuery
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.salesforce.errors import ApiLimitExceeded, SalesforceApiError
from gtm_pipeline.store.versions import (
    mark_purged,
    quarantined_versions,
    stored_count,
    stored_versions,
)
from gtm_pipeline.sync.access import unreadable_reason
from gtm_pipeline.sync.bulk_csv import read_csv_table
from gtm_pipeline.sync.coerce import to_boolean
from gtm_pipeline.sync.entities import Entity
from gtm_pipeline.sync.extract import iter_raw_pages
from gtm_pipeline.sync.load import convert_page, load_deletions, load_page
from gtm_pipeline.sync.mapping import resolve_mappings, selected_fields
from gtm_pipeline.sync.prepare import gate_page
from gtm_pipeline.sync.soql import by_id_queries, listing_query

CLASSES = ("missing", "stale", "ghosts", "wrongly_deleted")
LISTING_SCHEMA = pa.schema(
    [("Id", pa.string()), ("SystemModstamp", pa.string()), ("IsDeleted", pa.bool_())]
)
"""The listing's fields, as each REST page or Bulk result set is kept until all have come."""
ARCHIVED_LISTING_SCHEMA = LISTING_SCHEMA.append(pa.field("IsArchived", pa.bool_()))
"""The listing of an object whose old records Salesforce archives."""
FLAGS = ("IsDeleted", "IsArchived")
NAT = np.datetime64("NaT", "ns")
LISTING_MAX_RECORDS = 500_000
"""Records per result set of the Id-only Bulk job: three short columns, about 50 bytes a
record (25 MB a set), so a 1,000,000-record object is two result sets."""


@dataclass(frozen=True)
class ReconcileOptions:
    bulk_threshold: int = DEFAULT_BULK_THRESHOLD
    """Above this many stored records the listing is one Id-only Bulk queryAll job."""
    batch_size: int = 2000
    bulk_poll: BulkPollPolicy = field(default_factory=BulkPollPolicy)
    run_id: str | None = None


@dataclass(frozen=True)
class DriftCounts:
    missing: int = 0
    stale: int = 0
    ghosts: int = 0
    purged: int = 0
    """Ghosts absent even from queryAll (among `ghosts`)."""
    wrongly_deleted: int = 0

    @property
    def total(self) -> int:
        return self.missing + self.stale + self.ghosts + self.wrongly_deleted


@dataclass
class Reconciliation:
    """What one reconciliation of one entity found, repaired and left."""

    entity: str
    dry_run: bool
    listing: str = "rest"
    """How the Salesforce side was read: "rest" queryAll pages or one "bulk" job."""
    salesforce_records: int = 0
    before: DriftCounts = field(default_factory=DriftCounts)
    after: DriftCounts = field(default_factory=DriftCounts)
    records_reread: int = 0
    records_flagged_deleted: int = 0
    api_calls: int = 0
    seconds: float = 0.0
    stopped: str | None = None
    """Why the repair stopped early (the API budget), if it did."""
    not_readable: str | None = None
    """Why nothing was compared: the integration user may not read the object
    (`sync/access.py`)."""

    @property
    def outcome(self) -> str:
        """ "clean" (nothing drifted), "found" (a dry run's drift), "repaired" (drift found, none
        left), "drift_remains", or "not_readable" (nothing could be listed)."""
        if self.not_readable:
            return "not_readable"
        if not self.before.total:
            return "clean"
        if self.dry_run:
            return "found"
        return "drift_remains" if self.after.total else "repaired"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": self.outcome}


@dataclass(frozen=True)
class Drift:
    """The records of each class, from one comparison of a listing with the store."""

    reread: list[str]
    """Live in Salesforce and missing, stale or wrongly deleted in the store: read again."""
    deleted: pd.DataFrame
    """Id and SystemModstamp of records in the recycle bin the store holds otherwise."""
    purged: list[str]
    counts: DriftCounts
    listed: int
    """Distinct records in the listing."""


def reconcile_entity(
    client: SalesforceClient,
    engine: sa.Engine,
    tenant_id: str,
    entity: Entity,
    *,
    dry_run: bool = False,
    options: ReconcileOptions = ReconcileOptions(),
) -> Reconciliation:
    """Compare one entity of one tenant with Salesforce and, unless `dry_run`, repair it."""
    started, calls_before = time.perf_counter(), client.calls_made
    result = Reconciliation(entity=entity.name, dry_run=dry_run)
    try:
        listing, rows, quarantined = _both_sides(client, engine, tenant_id, entity, options, result)
    except SalesforceApiError as exc:
        result.not_readable = unreadable_reason(client, entity.sf_object, exc)
        if result.not_readable is None:
            raise
        result.api_calls = client.calls_made - calls_before
        return result
    drift = compare(listing, rows, quarantined)
    result.salesforce_records = drift.listed
    del rows, quarantined
    result.before = result.after = drift.counts
    if not dry_run and drift.counts.total:
        try:
            _repair(client, engine, tenant_id, entity, drift, options, result)
        except ApiLimitExceeded as exc:
            result.stopped = str(exc)
        result.after = compare(listing, *_stored(engine, tenant_id, entity)).counts
    result.api_calls = client.calls_made - calls_before
    result.seconds = round(time.perf_counter() - started, 3)
    return result


# -- reading both sides ------------------------------------------------------------------------


def _both_sides(
    client: SalesforceClient,
    engine: sa.Engine,
    tenant_id: str,
    entity: Entity,
    options: ReconcileOptions,
    result: Reconciliation,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The listing, and the store's rows and quarantine entries, read at the same time.

    The store is read in a second thread while Salesforce lists the records, so the database
    read overlaps the listing's network waits (sqlite3, psycopg and Arrow release the GIL while
    they work). The store's share starts before the listing ends, as a read before it would: a
    record changed in between shows as stale and is read again."""
    with engine.connect() as conn:
        stored = stored_count(conn, tenant_id, entity.name)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile-store") as pool:
        store_side = pool.submit(_stored, engine, tenant_id, entity)
        listing = _listing(client, entity, options, result, stored=stored)
        rows, quarantined = store_side.result()
    return listing, rows, quarantined


def _stored(engine: sa.Engine, tenant_id: str, entity: Entity) -> tuple[pd.DataFrame, pd.DataFrame]:
    archive_flag = ("is_archived",) if entity.archives else ()
    with engine.connect() as conn:
        rows = stored_versions(conn, tenant_id, entity.name)
        quarantined = quarantined_versions(conn, tenant_id, entity.name, archive_flag)
    for name in archive_flag:  # as the gates read it; missing reads as False, as for rows
        quarantined[name] = to_boolean(quarantined[name]).fillna(False).astype(bool)
    return rows, quarantined


def _listing(
    client: SalesforceClient,
    entity: Entity,
    options: ReconcileOptions,
    result: Reconciliation,
    *,
    stored: int,
) -> pd.DataFrame:
    """Id, SystemModstamp (UTC), IsDeleted of every record queryAll returns.

    The path is chosen from the number of records the store holds (no API call): more than the
    Bulk threshold means a large object."""
    soql = listing_query(entity.sf_object, with_archived=entity.archives)
    schema = ARCHIVED_LISTING_SCHEMA if entity.archives else LISTING_SCHEMA
    if stored > options.bulk_threshold:
        result.listing = "bulk"
        tables = _bulk_listing(client, soql, options, schema)
    else:
        tables = _rest_listing(client, soql, options, schema)
    # Each page or result set is kept as Arrow columns: no Python object per record.
    return _as_listing(pa.concat_tables([schema.empty_table(), *tables]))


def _rest_listing(
    client: SalesforceClient, soql: str, options: ReconcileOptions, schema: pa.Schema
) -> Iterator[pa.Table]:
    pages = client.query_pages(soql, include_deleted=True, batch_size=options.batch_size)
    for page in pages:
        columns = {name: [record[name] for record in page.records] for name in schema.names}
        yield pa.table(columns, schema=schema)


def _bulk_listing(
    client: SalesforceClient, soql: str, options: ReconcileOptions, schema: pa.Schema
) -> Iterator[pa.Table]:
    bulk = BulkQuery(client, options.bulk_poll)
    for result_set in bulk.run(soql, include_deleted=True, max_records=LISTING_MAX_RECORDS):
        text = read_csv_table(result_set.csv)  # every column as text
        if text.num_rows:
            columns = {"Id": text["Id"], "SystemModstamp": text["SystemModstamp"]}
            flags = {
                f: pc.equal(pc.utf8_lower(text[f]), "true") for f in FLAGS if f in schema.names
            }
            yield pa.table(columns | flags, schema=schema)


def _as_listing(table: pa.Table) -> pd.DataFrame:
    """Id (Arrow text), SystemModstamp (UTC), IsDeleted (and IsArchived when listed) of every
    record listed."""
    listing = pd.DataFrame(
        {
            "external_id": pd.arrays.ArrowStringArray(table["Id"].combine_chunks()),
            "sf_stamp": pd.Series(_instants(table["SystemModstamp"])).dt.tz_localize("UTC"),
            "sf_deleted": table["IsDeleted"].fill_null(False).to_numpy(),
        }
    )
    if "IsArchived" in table.column_names:
        listing["sf_archived"] = table["IsArchived"].fill_null(False).to_numpy()
    return listing


def _instants(text: pa.ChunkedArray) -> np.ndarray:
    """Stamps as UTC datetime64[ns], read by Arrow (no Python object each); should one not
    parse there, all go through pandas' ISO 8601 parser, and what it cannot read is NaT."""
    try:
        return text.cast(pa.timestamp("ns", "UTC")).to_numpy()
    except pa.ArrowInvalid:
        parsed = pd.to_datetime(text.to_pandas(), utc=True, format="ISO8601", errors="coerce")
        return _utc_instants(parsed)


# -- comparing ---------------------------------------------------------------------------------


def compare(listing: pd.DataFrame, rows: pd.DataFrame, quarantined: pd.DataFrame) -> Drift:
    """Classify every record of either side (see the module docstring).

    Every Id becomes a position among the distinct Ids of all sides, and each side's columns are
    spread over those positions: NumPy arrays instead of merges on text keys."""
    ids, (at_sf, at_row, at_q) = _positions(
        listing["external_id"], rows["external_id"], quarantined["external_id"]
    )
    n = len(ids)
    last = _last_listed(at_sf)
    at_sf = at_sf[last]
    in_sf, has_row, in_q = _present(n, at_sf), _present(n, at_row), _present(n, at_q)
    sf_deleted = _spread(n, at_sf, listing["sf_deleted"].to_numpy(dtype=bool)[last], False)
    row_deleted = _spread(n, at_row, rows["is_deleted"].to_numpy(dtype=bool), False)
    sf_stamp = _spread(n, at_sf, _utc_instants(listing["sf_stamp"])[last], NAT)
    row_stamp = _spread(n, at_row, _utc_instants(rows["system_modstamp"]), NAT)
    q_stamp = _spread(n, at_q, _utc_instants(quarantined["system_modstamp"]), NAT)
    row_live = has_row & ~row_deleted
    row_older = row_stamp < sf_stamp  # NaT on either side compares False
    q_differs = ~(q_stamp == sf_stamp)
    sf_live = in_sf & ~sf_deleted
    row_outdated = row_older | _archive_flag_differs(n, listing, rows, at_sf, at_row, last)
    q_differs |= _archive_flag_differs(n, listing, quarantined, at_sf, at_q, last)

    missing_live = sf_live & ~has_row & ~in_q
    stale_live = sf_live & ((row_live & row_outdated) | (in_q & (q_differs | has_row)))
    wrongly_deleted = sf_live & row_deleted & ~in_q
    reread = missing_live | stale_live | wrongly_deleted

    missing_deleted = in_sf & sf_deleted & ~has_row & ~in_q
    stale_deleted = in_sf & sf_deleted & row_deleted & row_older & ~in_q
    deleted_ghosts = in_sf & sf_deleted & (row_live | in_q)
    purged = ~in_sf & (row_live | in_q)
    flag_deleted = missing_deleted | stale_deleted | deleted_ghosts

    deleted = pd.DataFrame(
        {
            "Id": ids[flag_deleted].tolist(),
            "SystemModstamp": pd.Series(sf_stamp[flag_deleted]).dt.tz_localize("UTC"),
        }
    )
    counts = DriftCounts(
        missing=int((missing_live | missing_deleted).sum()),
        stale=int((stale_live | stale_deleted).sum()),
        ghosts=int((deleted_ghosts | purged).sum()),
        purged=int(purged.sum()),
        wrongly_deleted=int(wrongly_deleted.sum()),
    )
    return Drift(ids[reread].tolist(), deleted, ids[purged].tolist(), counts, len(at_sf))


def _archive_flag_differs(
    n: int,
    listing: pd.DataFrame,
    held: pd.DataFrame,
    at_sf: np.ndarray,
    at_held: np.ndarray,
    last: np.ndarray,
) -> np.ndarray:
    """Records whose archive flag in the store (`held`: its rows, or its quarantine entries) is
    not Salesforce's (all False where none is listed): archiving may leave the stamp as it was,
    so the stamps alone would call such a version current."""
    if "sf_archived" not in listing or "is_archived" not in held:
        return np.zeros(n, dtype=bool)
    sf_archived = _spread(n, at_sf, listing["sf_archived"].to_numpy(dtype=bool)[last], False)
    held_archived = _spread(n, at_held, held["is_archived"].to_numpy(dtype=bool), False)
    return sf_archived != held_archived


def _positions(*sides: pd.Series) -> tuple[pd.Index, list[np.ndarray]]:
    """The distinct Ids of all sides, and each side's Ids as positions among them."""
    codes, ids = pd.factorize(pd.concat(sides, ignore_index=True), use_na_sentinel=False)
    return ids, np.split(codes, np.cumsum([len(side) for side in sides[:-1]]))


def _last_listed(at: np.ndarray) -> np.ndarray:
    """Which listed records count: a record that changed while the listing was read can come
    twice, and its last listing wins."""
    return ~pd.Series(at).duplicated(keep="last").to_numpy()


def _present(n: int, at: np.ndarray) -> np.ndarray:
    return _spread(n, at, np.ones(len(at), dtype=bool), False)


def _spread(n: int, at: np.ndarray, values: np.ndarray, missing: object) -> np.ndarray:
    """`values` at positions `at` of an array of `n`, `missing` elsewhere."""
    spread = np.full(n, missing, dtype=values.dtype)
    spread[at] = values
    return spread


def _utc_instants(stamps: pd.Series) -> np.ndarray:
    """UTC instants as naive datetime64[ns] (NaT where unknown): one unit for every side."""
    return stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


# -- repairing ---------------------------------------------------------------------------------


def _repair(
    client: SalesforceClient,
    engine: sa.Engine,
    tenant_id: str,
    entity: Entity,
    drift: Drift,
    options: ReconcileOptions,
    result: Reconciliation,
) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if not drift.deleted.empty:
            load_deletions(
                conn, tenant_id=tenant_id, entity=entity, deleted=drift.deleted,
                mode="reconcile", now=now, hold_cursor=True,
            )  # fmt: skip
        flagged = mark_purged(conn, tenant_id, entity.name, drift.purged, now)
    result.records_flagged_deleted = len(drift.deleted) + flagged
    if drift.reread:
        _reread(client, engine, tenant_id, entity, sorted(drift.reread), options, result)


def _reread(
    client: SalesforceClient,
    engine: sa.Engine,
    tenant_id: str,
    entity: Entity,
    ids: list[str],
    options: ReconcileOptions,
    result: Reconciliation,
) -> None:
    """Read `ids` again with the sync's field list and load them as a sync loads a page."""
    with engine.begin() as conn:
        resolved = resolve_mappings(client, conn, tenant_id, entity, None)
    fields = selected_fields(entity, resolved.mappings)
    queries = by_id_queries(entity.sf_object, fields, ids, with_archived=entity.archives)
    for soql in queries:
        # queryAll where Salesforce archives records: an archived one is live, only older.
        pages = iter_raw_pages(
            client, soql, batch_size=options.batch_size, include_deleted=entity.archives
        )
        for page in pages:
            if page.frame.empty:
                continue
            gated = gate_page(entity, page.frame, resolved.mappings, tenant_id=tenant_id)
            now = datetime.now(UTC)
            converted = convert_page(engine.dialect, tenant_id, entity, gated, now)
            with engine.begin() as conn:
                load_page(
                    conn, tenant_id=tenant_id, entity=entity, page=converted, mode="reconcile",
                    run_id=options.run_id, now=now, stats={}, hold_cursor=True,
                )  # fmt: skip
            result.records_reread += len(page.frame)


def severity(result: Reconciliation) -> str:
    """PASS when nothing drifted, WARN when drift was found and repaired (or only reported, in a
    dry run) or the object could not be read, ERROR when drift remains after a repair."""
    warned = {"clean": "PASS", "found": "WARN", "repaired": "WARN", "not_readable": "WARN"}
    return warned.get(result.outcome, "ERROR")


__all__ = [
    "CLASSES",
    "DriftCounts",
    "ReconcileOptions",
    "Reconciliation",
    "compare",
    "reconcile_entity",
    "severity",
]
