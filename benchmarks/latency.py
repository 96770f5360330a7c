"""Full syncs under Salesforce's latency: the baseline parallel reads are measured against.

    .venv/bin/python -m benchmarks.latency [--contacts 100000 --accounts 20000
        --opportunities 30000] [--profile realistic] [--no-postgres] [--no-dlt] [--quick]
        [--no-write] [--no-airbyte]

An emulator (its own child process) serves one generated org with a latency profile
(`gtm_pipeline.emulator.latency`; `realistic`: 100 ms a data call, 0.6 ms per KB of JSON,
0.05 ms per KB of CSV, Bulk jobs 10 s + 2 s per 100,000 rows), the org of issue 23 by default.
Each row is one run in a child process of its own (`Bench.measure`: its peak RSS is the row's,
its API calls the emulator's count, OAuth excluded):

1. the serial floor: every page of Account, Contact and Opportunity with plain `requests`, one
   after another (`sync_scenarios.raw_floor`);
2. the connector's default path (Bulk API 2.0 for an object above the 200,000-record threshold,
   REST pages below), a full sync into a fresh SQLite and a fresh PostgreSQL database;
3. the connector forced onto REST pages, then onto Bulk jobs, into fresh databases of the same
   kinds (full reads of 8,000 records or more in up to 8 parallel slices, `sync/slices.py`);
4. dlt (benchmarks/dlt_salesforce.py) into a fresh SQLite database, when it is installed;
5. Airbyte's Salesforce source, extraction only (benchmarks/airbyte_salesforce.py: REST pages for
   Account and Contact, a Bulk job for Opportunity, every field, deleted records included), when
   `GTM_AIRBYTE_PYTHON` names the Python of a virtual environment it is installed in
   (`python3.11 -m venv /tmp/abvenv && /tmp/abvenv/bin/pip install airbyte-source-salesforce`,
   then `GTM_AIRBYTE_PYTHON=/tmp/abvenv/bin/python`); unset, the row reads "not available". Its
   seconds, peak RSS and records are those of the source's own process.

`vs floor` is the floor's seconds over the row's: above 1 is faster than reading serially.
Writes benchmarks/results/latency.{json,md}; `--quick` runs a small org under a small custom
profile (20 ms a call, 0.1 ms per KB, Bulk jobs 1 s) and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

from benchmarks import (
    add_store_arguments,
    machine_info,
    markdown_table,
    postgres_admin_url,
    publish,
    utc_now_iso,
)
from benchmarks import sync_scenarios as scenarios
from benchmarks.airbyte_salesforce import airbyte_python, unavailable_reason
from benchmarks.dlt_salesforce import dlt_available
from benchmarks.isolation import emulator_process
from benchmarks.sync_comparison import EMULATOR_OPTIONS, Bench, _label, fresh_store
from gtm_pipeline.emulator.latency import PROFILE_NAMES, LatencyProfile, profile_named

NAME = "latency"
ORG = {"Account": 20_000, "Contact": 100_000, "Opportunity": 30_000}
QUICK_ORG = {"Account": 600, "Contact": 3_000, "Opportunity": 900}
QUICK_PROFILE = LatencyProfile(
    name="custom", call_ms=20.0, json_ms_per_kb=0.1, csv_ms_per_kb=0.1, bulk_base_seconds=1.0
)
CONNECTOR_PATHS = (("default", "default", None), ("rest", "REST", False), ("bulk", "Bulk", True))
"""(row key, path label, `connector_sync`'s `bulk`): None is the default path."""


def connector_rows(bench: Bench, kinds: list[str], postgres_url: str) -> None:
    for key, path, bulk in CONNECTOR_PATHS:
        for kind in kinds:
            label = _label("connector full sync", path, kind)
            with fresh_store(kind, postgres_url) as url:
                bench.measure(f"{key}_{kind}", label, scenarios.connector_sync, url, True, bulk)


def dlt_row(bench: Bench, args: argparse.Namespace) -> None:
    label = _label("dlt full sync", "REST", "sqlite")
    if args.no_dlt or not dlt_available():
        why = "--no-dlt" if args.no_dlt else "dlt is not installed (pip install -e '.[bench]')"
        bench.unavailable("dlt_sqlite", label, why)
        return
    with (
        fresh_store("sqlite", "", migrate=False) as url,
        tempfile.TemporaryDirectory() as state,
    ):
        bench.measure_optional("dlt_sqlite", label, scenarios.dlt_sync, "sqlite", url, state)


def airbyte_row(bench: Bench, args: argparse.Namespace) -> None:
    label = _label("airbyte source-salesforce (extraction only)", "REST+Bulk")
    why = "--no-airbyte" if args.no_airbyte else unavailable_reason()
    if why is not None:
        bench.unavailable("airbyte", label, why)
        return
    bench.measure_optional("airbyte", label, scenarios.airbyte_read, airbyte_python())


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    kinds = ["sqlite"] if args.no_postgres else ["sqlite", "postgresql"]
    options = {**EMULATOR_OPTIONS, "latency_profile": args.profile}
    with emulator_process({"org": args.org}, **options) as (infos, generated):
        bench = Bench(infos["org"])
        floor = bench.measure(
            "floor", _label("serial floor (requests + json)", "REST"),
            scenarios.raw_floor, scenarios.BATCH_SIZE,
        )  # fmt: skip
        connector_rows(bench, kinds, args.postgres_url or postgres_admin_url())
        dlt_row(bench, args)
        airbyte_row(bench, args)
    for row in bench.rows:
        if row["available"]:
            row["vs_floor"] = round(floor["seconds"] / row["seconds"], 2)
    return {
        "benchmark": NAME,
        "profile": args.profile.to_json(),
        "org": args.org,
        "rows": bench.rows,
        "generation_seconds": generated,
        "recorded_at": utc_now_iso(),
        "machine": machine_info(),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "total_seconds": round(time.perf_counter() - started, 1),
    }


def _read_through(row: dict[str, Any]) -> str:
    """How each entity was read (`persons bulk, ...`), for the connector's rows."""
    per_entity = row["detail"].get("per_entity", {})
    return (
        ", ".join(
            f"{name} {e['extraction']}" + (f" ×{e['slices']}" if e.get("slices") else "")
            for name, e in per_entity.items()
        )
        or "-"
    )


def render(payload: dict[str, Any]) -> str:
    rows = [
        [row["scenario"], row["path"], row["store"], f"{row['seconds']:.2f}",
         f"{row['vs_floor']:.2f}x", row["api_calls"], f"{row['peak_rss_mb']:.0f}",
         f"{row['records']:,}", _read_through(row)]
        if row["available"]
        else [row["scenario"], row["path"], row["store"], "-", "-", "-", "-", "-", row["note"]]
        for row in payload["rows"]
    ]  # fmt: skip
    table = markdown_table(
        ["reader", "path", "store", "wall s", "vs floor", "API calls", "peak RSS MB", "records",
         "read through"],
        rows,
    )  # fmt: skip
    p, machine = payload["profile"], payload["machine"]
    org = ", ".join(f"{n:,} {o}" for o, n in payload["org"].items())
    return "\n".join(
        [
            "# Full syncs under latency",
            "",
            f"`python -m benchmarks.latency`: latency profile `{p['name']}` ({p['call_ms']:g} ms "
            f"a data call, {p['json_ms_per_kb']:g} ms per KB of JSON, {p['csv_ms_per_kb']:g} ms "
            f"per KB of CSV, Bulk jobs {p['bulk_base_seconds']:g} s + "
            f"{p['bulk_seconds_per_100k_rows']:g} s per 100,000 rows); an org of {org}, "
            f"generated in {payload['generation_seconds']} s. One run each, each in its own "
            "process (peak RSS is the row's), every connector row into a fresh database, dlt "
            f"on SQLite only. {payload['recorded_at']}, {machine['cpu_count']} CPUs "
            f"({machine['platform']}), load {payload['load_average'][0]} before, "
            f"{payload['load_average'][1]} after.",
            "",
            table,
            "",
            "`vs floor`: the serial floor's seconds over the row's (above 1 is faster than "
            "reading every page one after another). API calls: the emulator's count, OAuth "
            "excluded. Airbyte's row is extraction only (no store): its Salesforce source "
            "reading every field of the three objects, deleted records included, in its own "
            "virtual environment. Records: what the row read, counting the repeats the emulator "
            "serves of some records (the duplicate-Id gate's input). The emulator keeps at most "
            "10 query cursors open, finished ones included (Salesforce before API 56.0), so a "
            "long REST slice may lose its cursor; it reopens right after the last record it "
            "read and no longer meets that record's repeat, which is why a REST row can show a "
            "few records fewer than the floor while storing the same rows.",
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for sf_object, count in ORG.items():
        parser.add_argument(f"--{sf_object.lower()}s", type=int, default=count)
    parser.add_argument("--profile", choices=PROFILE_NAMES, default="realistic")
    parser.add_argument("--no-dlt", action="store_true", help="skip the dlt row")
    parser.add_argument("--no-airbyte", action="store_true", help="skip the Airbyte row")
    parser.add_argument("--quick", action="store_true", help="small org and profile, no write")
    add_store_arguments(parser)
    args = parser.parse_args(argv)
    args.org = {o: getattr(args, f"{o.lower()}s") for o in ORG}
    args.profile = profile_named(args.profile)
    if args.quick:
        args.org, args.profile = QUICK_ORG, QUICK_PROFILE
    payload = run(args)
    # The org records as `latency`, another org under its own name (`latency_1000000`).
    name = NAME if args.org == ORG else f"{NAME}_{args.org['Contact']}"
    publish(name, payload, render(payload), write=not (args.quick or args.no_write))
    return payload


if __name__ == "__main__":
    main()
