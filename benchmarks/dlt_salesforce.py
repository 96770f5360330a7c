"""The comparison point: a straightforward dlt pipeline for the same three Salesforce objects.

Written the way dlt's documentation and its Salesforce verified source suggest: simple-salesforce's
`query_all_iter` (REST `query` + `nextRecordsUrl`), one resource per object with
`dlt.sources.incremental("SystemModstamp")`, primary key `Id` and the `merge` write disposition,
records yielded a page at a time. It selects the same fields as the connector's default mappings.
Loaded into the same database as the connector: dlt's `sqlalchemy` destination for SQLite, its
`postgres` destination for PostgreSQL. Needs the `bench` extra (`pip install -e '.[bench]'`).

There is no quality gate, no mapping to canonical columns and no deletion handling here: that is
the point of comparison, not an omission to fix.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from benchmarks.sync_scenarios import COMPARED_ENTITIES
from gtm_pipeline.emulator.testing import CAPinnedSession
from gtm_pipeline.sync.soql import select_fields

PIPELINE_NAME = "salesforce_bench"
DATASET = "salesforce"
START = "1970-01-01T00:00:00.000+0000"
PAGE = 2000
DESTINATIONS = ("sqlite", "postgresql")


def dlt_available() -> bool:
    """Whether dlt and its SQL destinations can be imported here."""
    try:
        import dlt  # noqa: F401
        import dlt.destinations  # noqa: F401
    except ImportError:
        return False
    return True


def _soql_datetime(value: Any) -> str:
    """A SOQL datetime literal from the cursor dlt kept (a string as served, or a datetime)."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    return str(value)


def salesforce_source(sf: Any) -> Any:
    """A dlt source with one incremental resource per synced object."""
    import dlt

    def make_resource(sf_object: str, fields: list[str]) -> Any:
        @dlt.resource(name=sf_object.lower(), primary_key="Id", write_disposition="merge")
        def records(
            # dlt reads the incremental from the default: its documented idiom.
            modstamp: Any = dlt.sources.incremental("SystemModstamp", initial_value=START),  # noqa: B008
        ) -> Iterator[list[dict[str, Any]]]:
            soql = (
                f"SELECT {', '.join(fields)} FROM {sf_object} "  # noqa: S608
                f"WHERE SystemModstamp >= {_soql_datetime(modstamp.last_value)} "
                "ORDER BY SystemModstamp"
            )
            page: list[dict[str, Any]] = []
            for record in sf.query_all_iter(soql):
                record.pop("attributes", None)
                page.append(record)
                if len(page) == PAGE:
                    yield page
                    page = []
            if page:
                yield page

        return records

    @dlt.source(name="salesforce")
    def source() -> Any:
        return [
            make_resource(e.sf_object, select_fields(e.source_fields())) for e in COMPARED_ENTITIES
        ]

    return source()


def destination_for(kind: str, database_url: str) -> Any:
    """dlt's destination for the store's database (the store's own SQLAlchemy URL)."""
    import dlt

    if kind == "sqlite":
        # SQLite has one writer: dlt's parallel load jobs otherwise fail with "database is
        # locked" and are retried, which would charge dlt for a setting, not for its design.
        os.environ["LOAD__WORKERS"] = "1"
        return dlt.destinations.sqlalchemy(credentials=database_url)
    if kind == "postgresql":
        import sqlalchemy as sa

        # dlt's postgres destination speaks psycopg2 (no SQLAlchemy driver suffix) and insists
        # on a password; a server that trusts loopback (the tests' and benchmarks') ignores it.
        url = sa.make_url(database_url).set(drivername="postgresql")
        if url.password is None:
            url = url.set(password="unused-under-trust-auth")  # noqa: S106
        return dlt.destinations.postgres(credentials=url.render_as_string(hide_password=False))
    raise ValueError(f"unknown destination {kind!r}; expected one of {', '.join(DESTINATIONS)}")


def run_pipeline(
    info: Mapping[str, Any],
    access_token: str,
    destination: str,
    database_url: str,
    pipelines_dir: str,
) -> dict[str, Any]:
    """Run the pipeline once; the state in `pipelines_dir` makes a second run incremental."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    # dlt's sqlalchemy merge job trips a SQLAlchemy 2.1 deprecation warning on every run.
    warnings.filterwarnings("ignore", message="implicitly coercing SELECT object")
    import dlt
    from simple_salesforce import Salesforce

    session = CAPinnedSession(str(info["ca_bundle"]))
    sf = Salesforce(
        instance_url=info["instance_url"],
        session_id=access_token,
        version=info["api_version"],
        session=session,
    )
    pipeline = dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        pipelines_dir=pipelines_dir,
        destination=destination_for(destination, database_url),
        dataset_name=DATASET,
    )
    started = time.perf_counter()
    pipeline.run(salesforce_source(sf))
    seconds = time.perf_counter() - started
    trace = pipeline.last_trace
    normalized = trace.last_normalize_info if trace is not None else None
    if normalized is None:
        raise RuntimeError("dlt ran without a normalize step: no row counts to report")
    counts = normalized.row_counts
    per_object = {e.sf_object: int(counts.get(e.sf_object.lower(), 0)) for e in COMPARED_ENTITIES}
    session.close()
    return {"records": sum(per_object.values()), "seconds": seconds, "per_object": per_object}
