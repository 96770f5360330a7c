"""Run the benchmarks: `python -m benchmarks.run [--all] [--quick]` (`make bench` runs the default).

By default it runs the sync comparison: the one-run table of the raw floor, the connector (REST,
Bulk, default path, SQLite and PostgreSQL), dlt, the incremental syncs, the quality gates over
1,000,000 rows, the writeback of 100,000 scores and the memory rows. `--all` also runs the detail
benchmarks (store upsert, emulator serving, quality gates against a per-record loop, the gates'
fixed cost on 10-record pages, writeback on both stores with its reruns, reconciliation of
1,000,000 Contacts clean and with 1% drift, the sync sensor over 50 idle tenants, 1,000,000 Tasks
and 100,000 Events synced and scored, full syncs under the realistic latency profile), which take
about as long again; each also runs alone.
`--quick` runs the chosen benchmarks on small sizes without touching the recorded results: it
checks that they still work, not how fast anything is.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from benchmarks import (
    activities,
    emulator_serving,
    idle_tenants,
    latency,
    quality_gates,
    reconciliation,
    small_pages,
    store_upsert,
    sync_comparison,
    writeback,
)

QUICK_ARGS = {
    "store_upsert": ["--rows", "2000", "--page-size", "500", "--no-write"],
    "emulator_serving": ["--contacts", "3000", "--no-write"],
    "quality_gates": ["--quick"],
    "small_pages": ["--quick"],
    "writeback": ["--records", "1000", "--no-write"],
    "reconciliation": ["--quick"],
    "idle_tenants": ["--quick"],
    "activities": ["--quick"],
    "latency": ["--quick"],
    "sync_comparison": ["--quick"],
}
DETAIL: dict[str, Callable[[list[str]], object]] = {
    "store_upsert": store_upsert.main,
    "emulator_serving": emulator_serving.main,
    "quality_gates": quality_gates.main,
    "small_pages": small_pages.main,
    "writeback": writeback.main,
    "reconciliation": reconciliation.main,
    "idle_tenants": idle_tenants.main,
    "activities": activities.main,
    "latency": latency.main,
}
COMPARISON: dict[str, Callable[[list[str]], object]] = {"sync_comparison": sync_comparison.main}


def selected(run_all: bool) -> dict[str, Callable[[list[str]], object]]:
    """The benchmarks a run measures, in order: the detail ones (with `--all`), then the table."""
    return {**DETAIL, **COMPARISON} if run_all else dict(COMPARISON)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="also the detail benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes; results not recorded")
    args = parser.parse_args(argv)
    for name, run in selected(args.all).items():
        started = time.perf_counter()
        run(QUICK_ARGS[name] if args.quick else [])
        print(f"== {name} finished in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
