"""Leads and activities at scale: a full sync of a large org's Leads, Tasks and Events, an
incremental sync after new activities are logged, and the scoring run over all of them.

    .venv/bin/python -m benchmarks.activities [--leads 100000] [--tasks 1000000]
        [--events 100000] [--new 1000] [--quick] [--no-write]

An emulator (its own child process) serves an org of 2,000 Accounts, 20,000 Contacts, 4,000
Opportunities, `--leads` Leads (a share converted into Contacts, some email twins of Contacts)
and `--tasks` Tasks and `--events` Events (a share archived, visible only through queryAll).
Each measured step runs in a child process of its own (`benchmarks.isolation`: its peak RSS is
the step's), into one fresh SQLite store:

1. the full sync of the six entities in sync order (Leads, Tasks and Events above the Bulk
   threshold read through one Bulk API 2.0 job each);
2. `--new` Tasks logged in Salesforce (calls about the org's accounts, through the control API),
   then the incremental sync of the six entities;
3. the scores asset's work: the tenant's live rows and its activities of the model's 90-day
   window (ending where the generated history ends) read from the store, scored by the reference
   model (`score_all` with activities) and written to `scores`.

API calls are the emulator's own count (OAuth excluded). Writes
benchmarks/results/activities.{json,md}; `--quick` runs 2,000 Leads, 3,000 Tasks and 1,000 Events
and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from benchmarks import machine_info, markdown_table, publish, utc_now_iso
from benchmarks import sync_scenarios as scenarios
from benchmarks.isolation import emulator_process
from benchmarks.sync_comparison import EMULATOR_OPTIONS, Bench, BenchmarkError, fresh_store
from gtm_pipeline.sync.entities import SYNC_ORDER

NAME = "activities"
ORG = {"Account": 2_000, "Contact": 20_000, "Opportunity": 4_000}
ENTITIES = tuple(e.name for e in SYNC_ORDER)
MUTATIONS_PER_CALL = 2_000


def score_tenant(_info: dict, _token: str, database_url: str) -> dict[str, Any]:
    """What the scores asset does for one tenant, timed: read (the window's activities), score,
    write. `now` is the end of the generated org's history, so the window holds its last 90 days
    of activities rather than only those logged during the run."""
    from datetime import UTC, datetime, timedelta

    from gtm_pipeline.emulator.generate import HISTORY_END
    from gtm_pipeline.scoring.model import ScoringConfig, score_all
    from gtm_pipeline.store import make_engine
    from gtm_pipeline.store.scoring import load_activities, load_scoring_inputs, write_scores

    config, now = ScoringConfig(), datetime.fromtimestamp(HISTORY_END, UTC)
    since = now - timedelta(days=config.activity_window_days)
    engine = make_engine(database_url)
    try:
        started = time.perf_counter()
        with engine.begin() as conn:
            accounts, persons, opportunities = load_scoring_inputs(conn, scenarios.TENANT)
            activities = load_activities(conn, scenarios.TENANT, since)
            scores = score_all(accounts, persons, opportunities, config, now, activities)
            written = write_scores(conn, scenarios.TENANT, scores)
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    return {"records": len(activities), "seconds": seconds, "scores_written": written}


def log_new_tasks(bench: Bench, count: int) -> float:
    """`count` completed calls logged against the org's accounts; the seconds it took."""
    accounts = [r["Id"] for r in bench.control.truth("Account") if not r["IsDeleted"]]
    ops = [
        {
            "op": "insert",
            "object": "Task",
            "fields": {
                "Subject": f"Call {n}",
                "TaskSubtype": "Call",
                "Status": "Completed",
                "CallDurationInSeconds": 300,
                "WhatId": accounts[n % len(accounts)],
            },
        }
        for n in range(count)
    ]
    started = time.perf_counter()
    for start in range(0, len(ops), MUTATIONS_PER_CALL):
        bench.control.mutate(ops[start : start + MUTATIONS_PER_CALL])
    return round(time.perf_counter() - started, 2)


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    counts = {**ORG, "Lead": args.leads, "Task": args.tasks, "Event": args.events}
    with (
        emulator_process({"org": counts}, **EMULATOR_OPTIONS) as (infos, generated),
        fresh_store("sqlite", "") as url,
    ):
        bench = Bench(infos["org"])
        full = bench.measure(
            "full", {"scenario": "full sync, six entities"},
            scenarios.connector_sync, url, True, None, ENTITIES,
        )  # fmt: skip
        for name in ("leads", "tasks", "events"):
            if full["detail"]["per_entity"][name]["extraction"] != "bulk" and not args.quick:
                raise BenchmarkError(f"the full sync of {name} did not read through Bulk")
        logging_seconds = log_new_tasks(bench, args.new)
        incremental = bench.measure(
            "incremental", {"scenario": f"incremental after {args.new} new Tasks"},
            scenarios.connector_sync, url, False, None, ENTITIES,
        )  # fmt: skip
        if incremental["detail"]["per_entity"]["tasks"]["rows_loaded"] < args.new:
            raise BenchmarkError("the incremental sync missed new Tasks")
        scoring = bench.measure("scoring", {"scenario": "scoring"}, score_tenant, url)
    return {
        "benchmark": NAME,
        "org": counts,
        "rows": [full, incremental, scoring],
        "logging_seconds": logging_seconds,
        "generation_seconds": generated,
        "recorded_at": utc_now_iso(),
        "machine": machine_info() | {"load_before": round(load_before, 2)},
        "total_seconds": round(time.perf_counter() - started, 1),
    }


def render(payload: dict[str, Any]) -> str:
    rows = []
    for row in payload["rows"]:
        per_entity = row["detail"].get("per_entity", {})
        activity_rows = sum(per_entity.get(n, {}).get("rows_read", 0) for n in ("tasks", "events"))
        lead_rows = per_entity.get("leads", {}).get("rows_read", 0)
        paths = ", ".join(
            f"{n} {per_entity[n]['extraction']}"
            for n in ("leads", "tasks", "events")
            if n in per_entity
        )
        rows.append(
            [row["scenario"], f"{row['records']:,}", f"{lead_rows:,}" if per_entity else "-",
             f"{activity_rows:,}" if per_entity else "-", f"{row['seconds']:.2f}",
             row["api_calls"], f"{row['peak_rss_mb']:.0f}", paths or "-"]
        )  # fmt: skip
    table = markdown_table(
        ["step", "records", "of them Leads", "of them activities", "seconds", "API calls",
         "peak RSS MB", "path"],
        rows,
    )  # fmt: skip
    full = payload["rows"][0]["detail"]["per_entity"]
    per_entity = markdown_table(
        ["entity", "records read", "loaded", "seconds", "API calls", "path"],
        [[name, f"{e['rows_read']:,}", f"{e['rows_loaded']:,}", f"{e['seconds']:.2f}",
          e["api_calls"], e["extraction"]] for name, e in full.items()],
    )  # fmt: skip
    org = ", ".join(f"{n:,} {o}" for o, n in payload["org"].items())
    return "\n".join(
        [
            "# Leads and activities at scale",
            "",
            f"`python -m benchmarks.activities`: an org of {org}, one run into SQLite, each step "
            "in its own process (peak RSS is the step's); the org generated in "
            f"{payload['generation_seconds']} s. {payload['recorded_at']}, "
            f"{payload['machine']['cpu_count']} CPUs, load {payload['machine']['load_before']}.",
            "",
            table,
            "",
            "`records` of the scoring row: the live activities of the model's 90-day window "
            "(before the end of the generated history) that the scores asset read from the store; "
            f"it scored {payload['rows'][-1]['detail'].get('scores_written', 0):,} records "
            "(accounts, Contacts, Leads, opportunities).",
            "",
            "The full sync, entity by entity:",
            "",
            per_entity,
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=1_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.leads, args.tasks, args.events, args.new = 2_000, 3_000, 1_000, 100
    payload = run(args)
    publish(NAME, payload, render(payload), write=not (args.quick or args.no_write))
    return payload


if __name__ == "__main__":
    main()
