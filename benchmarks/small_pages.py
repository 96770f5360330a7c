"""What gating one small page costs: the fixed cost an incremental sync pays for every page.

Run: `.venv/bin/python -m benchmarks.small_pages [--records N] [--repeat N] [--quick] [--no-write]`

Pages of `--records` records (default 10) of each of the six synced objects, four per object,
read from a generated org with 10% dirty records (`Org.generate`, no server), are built before
the clock starts. Each round puts every page through `prepare.gate_page` (the raw contract, the
mapping and the three quality gates, quarantine rows included); the best of `--repeat` rounds is
kept, per object and overall. Another checkout is measured by running this file with its folder
first on the path (`PYTHONPATH=<checkout> python -m benchmarks.small_pages --no-write`).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import pandas as pd

from benchmarks import machine_info, markdown_table, publish, utc_now_iso
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.sync.entities import SYNC_ORDER, Entity
from gtm_pipeline.sync.extract import flatten_records
from gtm_pipeline.sync.prepare import gate_page
from gtm_pipeline.sync.soql import modified_query

NAME = "small_pages"
PAGES_PER_OBJECT = 4
DIRTY_RATIO = 0.1
SEED = 5
# The same pages on the same machine at commit 0a2ecab, before schemas were built once and
# validated eagerly and text was cleaned with Arrow: kept so the figure is not lost.
BEFORE = {"commit": "0a2ecab", "ms_per_page": 24.23}


def small_pages(records: int) -> list[tuple[Entity, pd.DataFrame]]:
    """`PAGES_PER_OBJECT` pages of `records` raw records of every synced object."""
    count = records * PAGES_PER_OBJECT
    counts = {entity.sf_object: count for entity in SYNC_ORDER}
    org = Org.generate(seed=SEED, counts=counts, dirty_ratio=DIRTY_RATIO)
    pages = []
    for entity in SYNC_ORDER:
        fields = list(dict.fromkeys(["Id", *entity.source_fields(), "SystemModstamp"]))
        query = modified_query(entity.sf_object, fields, None)
        result = org.execute_query(query, include_deleted=False)
        for start in range(0, min(result.total_size, count), records):
            pages.append((entity, flatten_records(result.page(start, start + records))))
    return pages


def _round(pages: list[tuple[Entity, pd.DataFrame]]) -> tuple[dict[str, float], int, int]:
    """Seconds per object for one pass over the pages, and the records kept and rejected."""
    seconds: dict[str, float] = {}
    kept = rejected = 0
    for entity, frame in pages:
        started = time.perf_counter()
        gated = gate_page(entity, frame)
        seconds[entity.name] = seconds.get(entity.name, 0.0) + time.perf_counter() - started
        kept += len(gated.result.clean)
        rejected += len(gated.rejected)
    return seconds, kept, rejected


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10, help="records per page")
    parser.add_argument("--repeat", type=int, default=20, help="rounds; the best is kept")
    parser.add_argument("--quick", action="store_true", help="3 rounds; results not recorded")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else args.repeat
    pages = small_pages(args.records)
    _round(pages)  # warm-up: imports, schema building
    rounds = [_round(pages) for _ in range(repeat)]
    best = {name: min(r[0][name] for r in rounds) for name in rounds[0][0]}
    per_object = {name: sum(1 for e, _ in pages if e.name == name) for name in best}
    _, kept, rejected = rounds[0]
    total_ms = sum(best.values()) / len(pages) * 1000
    rows = [[name, per_object[name], f"{best[name] / per_object[name] * 1000:.2f}"]
            for name in best]  # fmt: skip
    markdown = "\n\n".join([
        f"# {NAME}\n\n{len(pages)} pages of {args.records} records (six objects, "
        f"{DIRTY_RATIO:.0%} dirty), best of {repeat} rounds; recorded {utc_now_iso()} on "
        f"{machine_info()['platform']} ({machine_info()['cpu_count']} CPUs).",
        markdown_table(["object", "pages", "ms per gate_page"], rows),
        f"All pages: **{total_ms:.2f} ms** per page; {kept} records kept, {rejected} rejected "
        f"per round. At commit {BEFORE['commit']} (same pages and machine, 2026-12-07): "
        f"{BEFORE['ms_per_page']} ms per page, the same records kept and rejected.",
    ])  # fmt: skip
    payload = {
        "benchmark": NAME,
        "recorded_at": utc_now_iso(),
        "machine": machine_info(),
        "records_per_page": args.records,
        "pages": len(pages),
        "rounds": repeat,
        "total_seconds": round(sum(best.values()), 4),
        "ms_per_page": round(total_ms, 3),
        "ms_per_page_by_object": {n: round(best[n] / per_object[n] * 1000, 3) for n in best},
        "kept": kept,
        "rejected": rejected,
    }
    publish(NAME, payload, markdown, write=not (args.quick or args.no_write))
    return payload


if __name__ == "__main__":
    main()
