"""Reconciliation of a large org's Contacts: its cost when nothing drifted, and the repair of 1%.

    .venv/bin/python -m benchmarks.reconciliation [--contacts 1000000] [--drift-share 0.01]
        [--no-postgres] [--quick] [--no-write]

An emulator serves the org of `--contacts` Contacts that the sync comparison's memory rows use
(benchmarks.sync_comparison.memory_org); every measured step runs in its own child process
(benchmarks.isolation) and its API calls are the emulator's own count (OAuth excluded). Per
store (SQLite, then PostgreSQL unless `--no-postgres`):

1. the connector's full sync of Contacts through REST pages into one fresh store, and through
   Bulk API 2.0 into another (the time reconciliation is compared with);
2. `reconcile_entity` with nothing drifted: the REST store with the listing through queryAll REST
   pages (Bulk threshold above the record count), the Bulk store with the listing through one
   Id-only Bulk job (threshold 0).

Then the org drifts while no sync runs, through the emulator's control API, by `--drift-share`
of the Contacts: 40% changed by late commits stamped 20 minutes back (beyond the incremental
sync's 10-minute lookback: stale), 20% inserted by such late commits (missing), 20% deleted
(ghosts in the recycle bin) and 20% deleted and purged (ghosts absent even from queryAll); and
each store is reconciled again through the same listing: the repair's extra calls and time are
what it costs beyond the clean reconciliation, and nothing may be left (after = 0).
Writes benchmarks/results/reconciliation.{json,md}; `--quick` runs a small org (2,000 Contacts)
on SQLite only and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping
from contextlib import ExitStack
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
from benchmarks.isolation import emulator_process
from benchmarks.sync_comparison import (
    EMULATOR_OPTIONS,
    Bench,
    BenchmarkError,
    _label,
    fresh_store,
    memory_org,
    pick_person_ids,
)

NAME = "reconciliation"
PATHS = {"rest": False, "bulk": True}
LATE_AGE_SECONDS = 1200
"""Late commits stamped 20 minutes back: beyond the incremental sync's 10-minute lookback."""
DRIFT_MIX = {"late_update": 0.4, "late_insert": 0.2, "delete": 0.2, "purge": 0.2}
TARGET_SHARE = 0.25
"""A clean reconciliation takes at most a quarter of the full sync's wall time..."""
TARGET_CALLS = {"rest": 501, "bulk": 8}
"""...and at most this many API calls (1,000,000 Contacts: 501 REST pages, or 8 Bulk calls)."""
MUTATIONS_PER_CALL = 2000


# --- drift ------------------------------------------------------------------------------------


def drift_plan(ids: list[str], total: int) -> dict[str, list]:
    """Which stored Contacts (`ids`, distinct) each kind of drift takes; inserts are counts."""
    sizes = {kind: int(total * share) for kind, share in DRIFT_MIX.items()}
    sizes["late_update"] += total - sum(sizes.values())
    plan: dict[str, list] = {}
    start = 0
    for kind in ("late_update", "delete", "purge"):
        plan[kind] = ids[start : start + sizes[kind]]
        start += sizes[kind]
    plan["late_insert"] = list(range(sizes["late_insert"]))
    return plan


def drift_ops(plan: dict[str, list]) -> list[Mapping[str, Any]]:
    """The control API's mutations for `plan`, as Salesforce users and integrations make them."""
    late = {"op": "late_commit", "object": "Contact", "age_seconds": LATE_AGE_SECONDS}
    ops: list[Mapping[str, Any]] = [
        {**late, "id": i, "fields": {"Title": f"Late title {n}"}}
        for n, i in enumerate(plan["late_update"])
    ]
    ops += [
        {
            **late,
            "fields": {
                "FirstName": "Late",
                "LastName": f"Insert {n}",
                "Email": f"late.insert.{n}@reconciliation.example",
            },
        }
        for n in plan["late_insert"]
    ]
    ops += [{"op": "delete", "object": "Contact", "id": i} for i in plan["delete"] + plan["purge"]]
    ops += [{"op": "purge", "object": "Contact", "id": i} for i in plan["purge"]]
    return ops


def apply_drift(bench: Bench, ops: list[Mapping[str, Any]]) -> float:
    started = time.perf_counter()
    for start in range(0, len(ops), MUTATIONS_PER_CALL):
        bench.control.mutate(ops[start : start + MUTATIONS_PER_CALL])
    return round(time.perf_counter() - started, 2)


def expected_drift(plan: dict[str, list]) -> dict[str, int]:
    ghosts = len(plan["delete"]) + len(plan["purge"])
    return {
        "missing": len(plan["late_insert"]),
        "stale": len(plan["late_update"]),
        "ghosts": ghosts,
        "purged": len(plan["purge"]),
        "wrongly_deleted": 0,
    }


# --- the run ------------------------------------------------------------------------------------


def reconcile_row(bench: Bench, key: str, scenario: str, path: str, kind: str, url: str) -> dict:
    label = _label(scenario, "Bulk" if PATHS[path] else "REST", kind)
    row = bench.measure(key, label, scenarios.connector_reconcile, url, PATHS[path])
    if row["detail"]["listing"] != path:
        raise BenchmarkError(f"{key}: the listing went through {row['detail']['listing']}")
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    postgres_url = args.postgres_url or postgres_admin_url()
    kinds = ["sqlite"] if args.no_postgres else ["sqlite", "postgresql"]
    org = memory_org(args.contacts)
    drift_total = max(len(DRIFT_MIX), round(args.contacts * args.drift_share))
    with (
        emulator_process({"main": org}, seed=args.seed, dirty_ratio=args.dirty_ratio,
                         **EMULATOR_OPTIONS) as (infos, generated),
        ExitStack() as stack,
    ):  # fmt: skip
        bench = Bench(infos["main"])
        stores: dict[tuple[str, str], str] = {}
        for kind in kinds:
            for path, bulk in PATHS.items():
                url = stores[kind, path] = stack.enter_context(fresh_store(kind, postgres_url))
                label = _label("contacts full sync", "Bulk" if bulk else "REST", kind)
                bench.measure(
                    f"full_{path}_{kind}", label, scenarios.connector_sync, url, True, bulk,
                    ("persons",),
                )  # fmt: skip
            for path in PATHS:
                reconcile_row(
                    bench, f"clean_{path}_{kind}", "reconciliation, nothing drifted", path,
                    kind, stores[kind, path],
                )  # fmt: skip
        ids = pick_person_ids(stores[kinds[0], "rest"], drift_total)
        plan = drift_plan(ids, drift_total)
        drift_seconds = apply_drift(bench, drift_ops(plan))
        drifted = f"reconciliation, {args.drift_share:.0%} drifted"
        for kind in kinds:
            for path in PATHS:
                url = stores[kind, path]
                reconcile_row(bench, f"drift_{path}_{kind}", drifted, path, kind, url)
    payload = {
        "benchmark": NAME,
        "org": org,
        "synced": "Contact",
        "stores": kinds,
        "dirty_ratio": args.dirty_ratio,
        "seed": args.seed,
        "batch_size": scenarios.BATCH_SIZE,
        "drift": {
            "share": args.drift_share,
            "records": drift_total,
            "late_commit_age_seconds": LATE_AGE_SECONDS,
            "expected": expected_drift(plan),
            "applied_seconds": drift_seconds,
        },
        "generate_seconds": generated,
        "total_seconds": round(time.perf_counter() - started, 1),
        "rows": bench.rows,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "recorded_at": utc_now_iso(),
        "machine": machine_info(),
    }
    payload["targets"] = judge(payload, kinds)
    return payload


# --- judging and reporting ----------------------------------------------------------------------


def _rows(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in payload["rows"]}


def judge(payload: dict[str, Any], kinds: list[str]) -> list[dict[str, Any]]:
    rows = _rows(payload)
    expected = payload["drift"]["expected"]
    targets = []
    for kind in kinds:
        for path in PATHS:
            full, clean = rows[f"full_{path}_{kind}"], rows[f"clean_{path}_{kind}"]
            drift = rows[f"drift_{path}_{kind}"]
            share = clean["seconds"] / full["seconds"]
            before = clean["detail"]["before"]
            met = (
                share <= TARGET_SHARE
                and clean["api_calls"] <= TARGET_CALLS[path]
                and not sum(before[c] for c in ("missing", "stale", "ghosts", "wrongly_deleted"))
            )
            targets.append(
                {
                    "target": f"clean reconciliation ≤ {TARGET_SHARE:g}x the {path.upper()} "
                    f"full sync's time, ≤ {TARGET_CALLS[path]} calls, no drift found ({kind})",
                    "measured": f"{clean['seconds']:.2f} s = {share:.3f}x "
                    f"{full['seconds']:.2f} s; {clean['api_calls']} calls; "
                    f"drift found {_counts(before)}",
                    "verdict": "met" if met else "missed",
                }
            )
            found, after = drift["detail"]["before"], drift["detail"]["after"]
            repaired = found == expected and not any(after.values())
            targets.append(
                {
                    "target": f"{payload['drift']['share']:.0%} drift found as made and "
                    "repaired, after = 0 "
                    f"({path.upper()} listing, {kind})",
                    "measured": f"found {_counts(found)}; after {_counts(after)}",
                    "verdict": "met" if repaired else "missed",
                }
            )
    return targets


def _counts(counts: dict[str, int]) -> str:
    shown = {k: v for k, v in counts.items() if v}
    return ", ".join(f"{k} {v:,}" for k, v in shown.items()) or "none"


def table_rows(payload: dict[str, Any]) -> list[list[Any]]:
    rows = _rows(payload)
    out = []
    for row in payload["rows"]:
        key, kind = row["key"], row["store"]
        path = "bulk" if row["path"] == "Bulk" else "rest"
        full = rows[f"full_{path}_{kind}"]
        vs_full = "-" if key.startswith("full_") else f"{row['seconds'] / full['seconds']:.3f}x"
        extra, note = "-", ""
        detail = row["detail"]
        if key.startswith("drift_"):
            clean = rows[f"clean_{path}_{kind}"]
            extra = (
                f"+{row['api_calls'] - clean['api_calls']} calls, "
                f"+{row['seconds'] - clean['seconds']:.2f} s"
            )
            note = (
                f"found {_counts(detail['before'])}; {detail['records_reread']:,} re-read, "
                f"{detail['records_flagged_deleted']:,} flagged deleted; "
                f"after {_counts(detail['after'])}"
            )
        elif key.startswith("clean_"):
            note = f"drift found: {_counts(detail['before'])}"
        else:
            persons = detail["per_entity"]["persons"]
            note = f"{persons['rows_loaded']:,} loaded, {persons['rows_rejected']:,} quarantined"
        out.append(
            [
                row["scenario"], row["path"], kind, f"{row['records']:,}", f"{row['seconds']:.2f}",
                vs_full, row["api_calls"], extra, row["peak_rss_mb"], note,
            ]
        )  # fmt: skip
    return out


def render_markdown(payload: dict[str, Any]) -> str:
    drift = payload["drift"]
    machine = payload["machine"]
    headers = [
        "scenario", "path", "store", "records", "wall s", "× full sync (same path, store)",
        "API calls", "repair's extra", "peak RSS MB", "notes",
    ]  # fmt: skip
    org = payload["org"]
    lines = [
        "# Reconciliation of Contacts: nothing drifted, and 1% drifted",
        "",
        f"`python -m benchmarks.reconciliation --contacts {org['Contact']}"
        f"{'' if 'postgresql' in payload['stores'] else ' --no-postgres'}` (seed "
        f"{payload['seed']}, {payload['dirty_ratio']:.0%} dirty records, batch size "
        f"{payload['batch_size']}), one run, total {payload['total_seconds']} s; org of "
        f"{sum(org.values()):,} records generated in {payload['generate_seconds']} s (not "
        "measured), Contacts alone synced. Every row ran in a fresh child process; API calls are "
        "the emulator's own count (OAuth excluded). Full syncs: `sync_entity` of persons into a "
        "fresh store, through REST pages (Bulk threshold above the org) and through Bulk API 2.0 "
        "(threshold 0). Reconciliations: `reconcile_entity(..., options=ReconcileOptions("
        "bulk_threshold=...))`, repairing, on the store the full sync of the same path filled: "
        "listing through queryAll REST pages, or one Id-only Bulk job.",
        "",
        f"Drift, made through the emulator's control API while no sync ran ("
        f"{drift['records']:,} Contacts, {drift['share']:.0%}, in {drift['applied_seconds']} s): "
        f"{drift['expected']['stale']:,} changed by late commits stamped "
        f"{drift['late_commit_age_seconds'] // 60} minutes back (beyond the 10-minute lookback), "
        f"{drift['expected']['missing']:,} inserted by such late commits, "
        f"{drift['expected']['ghosts'] - drift['expected']['purged']:,} deleted, "
        f"{drift['expected']['purged']:,} deleted and purged. The repair's extra: calls and "
        "seconds beyond the clean reconciliation on the same store and path.",
        "",
        markdown_table(headers, table_rows(payload)),
        "",
        "## Targets",
        "",
        markdown_table(
            ["target", "measured", "verdict"],
            [[t["target"], t["measured"], f"**{t['verdict']}**"] for t in payload["targets"]],
        ),
        "",
        f"Machine: {machine['platform']}, {machine['cpu_count']} CPUs, Python "
        f"{machine['python']}; 1-minute load average {payload['load_average'][0]} before and "
        f"{payload['load_average'][1]} after (other work on the machine shows in every figure). "
        f"Recorded {payload['recorded_at']}.",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small org, nothing recorded")
    parser.add_argument("--contacts", type=int, default=None, help="Contacts in the org")
    parser.add_argument("--drift-share", type=float, default=0.01, help="share of Contacts drifted")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dirty-ratio", type=float, default=0.05)
    add_store_arguments(parser)
    args = parser.parse_args(argv)
    if args.contacts is None:
        args.contacts = 2_000 if args.quick else 1_000_000
    if args.quick:  # seconds, not minutes: SQLite only
        args.no_write = args.no_postgres = True
    if args.contacts < 100:
        parser.error("--contacts must be at least 100")
    if not 0 < args.drift_share <= 0.5:
        parser.error("--drift-share must be above 0 and at most 0.5")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    payload = run(args)
    publish(NAME, payload, render_markdown(payload), write=not args.no_write)
    return payload


if __name__ == "__main__":
    main()
