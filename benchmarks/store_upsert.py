"""How fast the store takes a sync's pages: persons upserted page by page, each page committed.

Run: `.venv/bin/python -m benchmarks.store_upsert [--rows N] [--page-size N] [--postgres-url URL]`

For SQLite (a temporary file) and PostgreSQL (a temporary database created on the server at
`--postgres-url` and dropped afterwards) it migrates an empty store, then upserts `--rows`
persons in pages of `--page-size`, one transaction per page, three times: as inserts, as a
second tenant's first full sync would insert them (`write_upsert` with the sync's
`WrittenKeys`: on PostgreSQL copied straight into the table), and as updates of the first
tenant's rows carrying a newer `system_modstamp`. Pages are generated before the clock starts, so
the figures measure `upsert_records` (validation, batching, SQL) plus the commit.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from benchmarks import (
    add_store_arguments,
    machine_info,
    markdown_table,
    postgres_admin_url,
    temporary_postgres_database,
    temporary_sqlite_url,
    utc_now_iso,
    write_results,
)
from gtm_pipeline.store import make_engine, persons, upgrade, upsert_records
from gtm_pipeline.store.written_keys import WrittenKeys

NAME = "store_upsert"
PASSES = (
    ("insert", "bench", 0, False),
    ("first sync", "first", 0, True),
    ("update", "bench", 1, False),
)
"""Each pass: its name, the tenant it writes, the version of the rows, and whether it writes
through a first full sync's `WrittenKeys`."""
BASE_MODSTAMP = datetime(2024, 1, 1, tzinfo=UTC)
TITLES = np.array(["CEO", "CTO", "VP Sales", "Head of Data", "Engineer", "Analyst", None], object)


def person_pages(
    rows: int, page_size: int, version: int, seed: int = 7, tenant: str = "bench"
) -> list[pd.DataFrame]:
    """Deterministic pages of persons for `tenant`; `version` shifts stamps and values."""
    rng = np.random.default_rng(seed + version)
    ids = np.arange(rows)
    frame = pd.DataFrame(
        {
            "tenant_id": tenant,
            "external_id": [f"003BENCH{i:010d}" for i in ids],
            "email": [f"person{i}.v{version}@example.com" for i in ids],
            "first_name": [f"First{i}" for i in ids],
            "last_name": [f"Last{i}" for i in ids],
            "title": TITLES[rng.integers(0, len(TITLES), rows)],
            "phone": [f"+1-555-{i % 10_000:04d}" for i in ids],
            "account_external_id": [f"001BENCH{i // 25:010d}" for i in ids],
            "system_modstamp": pd.Series(
                BASE_MODSTAMP + timedelta(days=version) + pd.to_timedelta(ids, unit="s")
            ),
            "is_deleted": False,
            "custom_fields": [{"Lead_Source__c": "Web", "Rank__c": int(r)} for r in ids % 100],
        }
    )
    return [frame.iloc[start : start + page_size] for start in range(0, rows, page_size)]


def run_pass(
    engine: sa.Engine, pages: list[pd.DataFrame], written: WrittenKeys | None = None
) -> tuple[int, float]:
    """Upsert every page in its own transaction (through `written`, a first sync's keys, when
    given); return rows applied and seconds taken."""
    applied = 0
    started = time.perf_counter()
    for page in pages:
        with engine.begin() as conn:
            applied += upsert_records(conn, persons, page, written=written)
    return applied, time.perf_counter() - started


def bench_database(label: str, url: str, rows: int, page_size: int) -> list[dict[str, Any]]:
    engine = make_engine(url)
    results = []
    try:
        upgrade(engine)
        for pass_name, tenant, version, first_sync in PASSES:
            pages = person_pages(rows, page_size, version, tenant=tenant)
            written = WrittenKeys() if first_sync else None
            applied, seconds = run_pass(engine, pages, written)
            if applied != rows:
                raise RuntimeError(f"{label} {pass_name}: {applied} rows applied, expected {rows}")
            results.append(
                {
                    "database": label,
                    "pass": pass_name,
                    "rows": rows,
                    "pages": len(pages),
                    "seconds": round(seconds, 3),
                    "rows_per_second": round(rows / seconds),
                }
            )
            print(
                f"{label:<10} {pass_name:<10} {rows:>9,} rows {seconds:8.2f} s "
                f"{rows / seconds:>10,.0f} rows/s"
            )
        with engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(persons)).scalar_one()
            server = conn.exec_driver_sql(
                "SELECT sqlite_version()" if label == "sqlite" else "SHOW server_version"
            ).scalar_one()
        expected = rows * len({tenant for _, tenant, _, _ in PASSES})
        if stored != expected:
            raise RuntimeError(f"{label}: {stored} rows stored, expected {expected}")
        for result in results:
            result["server_version"] = server
    finally:
        engine.dispose()
    return results


def render_markdown(payload: dict[str, Any]) -> str:
    machine = payload["machine"]
    table = markdown_table(
        ["database", "version", "pass", "rows", "pages", "seconds", "rows/s"],
        [
            [
                r["database"],
                r["server_version"],
                r["pass"],
                f"{r['rows']:,}",
                r["pages"],
                f"{r['seconds']:.2f}",
                f"{r['rows_per_second']:,}",
            ]
            for r in payload["results"]
        ],
    )
    return (
        "# Store upsert benchmark\n\n"
        f"{payload['rows']:,} persons upserted in pages of {payload['page_size']:,}, one "
        "transaction per page: a pass of inserts, a second tenant's rows inserted as its first "
        "full sync writes them (PostgreSQL: copied in), then a pass of updates of the first "
        "tenant's rows with newer `system_modstamp`s. "
        "Command: `.venv/bin/python -m benchmarks.store_upsert`.\n\n"
        f"{table}\n\n"
        f"Machine: {machine['platform']}, {machine['cpu_count']} CPUs, "
        f"Python {machine['python']}. Recorded {payload['recorded_at']}.\n"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="persons to upsert per pass")
    parser.add_argument("--page-size", type=int, default=2_000, help="rows per transaction")
    add_store_arguments(parser)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.page_size < 1:
        parser.error("--rows and --page-size must be positive")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    results: list[dict[str, Any]] = []
    with temporary_sqlite_url() as url:
        results += bench_database("sqlite", url, args.rows, args.page_size)
    if not args.no_postgres:
        with temporary_postgres_database(args.postgres_url or postgres_admin_url()) as url:
            results += bench_database("postgresql", url, args.rows, args.page_size)
    payload = {
        "benchmark": NAME,
        "rows": args.rows,
        "page_size": args.page_size,
        "recorded_at": utc_now_iso(),
        "machine": machine_info(),
        "results": results,
    }
    print(render_markdown(payload))
    if not args.no_write:
        json_path, md_path = write_results(NAME, payload, render_markdown(payload))
        print(f"wrote {json_path} and {md_path}")
    return payload


if __name__ == "__main__":
    main()
