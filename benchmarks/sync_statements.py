"""Where a full sync's database time goes: one full sync of Contacts, SQL time per statement.

`python -m benchmarks.sync_statements [--contacts N] [--path rest|bulk] [--store sqlite|postgresql]
[--parallel-reads N]`
syncs the memory org of N Contacts (benchmarks.sync_comparison's `memory_org`, served from a child
process) into a fresh store in this process and prints the wall time, the CPU time of this
process (steadier than wall time on a shared machine) and, per statement, how often it ran and
the seconds spent in the driver. Run it at two commits to see what a change to
the store costs (`PYTHONPATH=<other checkout> python -m benchmarks.sync_statements ...`).
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from benchmarks import sync_scenarios as scenarios
from benchmarks.isolation import emulator_process
from benchmarks.sync_comparison import EMULATOR_OPTIONS, fresh_store, memory_org
from gtm_pipeline.emulator.testing import obtain_tokens

SHOWN = 14


@contextmanager
def statement_times() -> Iterator[dict[str, list[float]]]:
    """Seconds and runs per statement (first 110 characters) of every engine while open."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def before(conn, _cursor, _statement, _params, _context, _many) -> None:
        conn.info.setdefault("started", []).append(time.perf_counter())

    def after(conn, _cursor, statement, _params, _context, _many) -> None:
        entry = totals[re.sub(r"\s+", " ", statement)[:110]]
        entry[0] += 1
        entry[1] += time.perf_counter() - conn.info["started"].pop()

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", before)
    sa.event.listen(sa.engine.Engine, "after_cursor_execute", after)
    try:
        yield totals
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", before)
        sa.event.remove(sa.engine.Engine, "after_cursor_execute", after)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--path", choices=("rest", "bulk"), default="rest")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--parallel-reads", type=int, default=None, help="slices at most (default: the checkout's)"
    )
    args = parser.parse_args(argv)
    with emulator_process({"main": memory_org(args.contacts)}, **EMULATOR_OPTIONS) as (infos, _):
        info = infos["main"]
        token = obtain_tokens(info)["access_token"]
        with fresh_store(args.store, "") as url, statement_times() as totals:
            started, cpu_started = time.perf_counter(), time.process_time()
            bulk = args.path == "bulk"
            result = scenarios.connector_sync(
                info, token, url, True, bulk, ("persons",), args.parallel_reads
            )
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            shown = sorted(totals.items(), key=lambda item: -item[1][1])[:SHOWN]
            spent = sum(seconds for _, seconds in totals.values())
    print(f"wall {wall:.2f} s, CPU {cpu:.2f} s, records {result['records']}, SQL {spent:.2f} s")
    for statement, (runs, seconds) in shown:
        print(f"{seconds:7.2f} s {int(runs):6d}x  {statement}")


if __name__ == "__main__":
    main()
