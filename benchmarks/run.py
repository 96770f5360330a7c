"""Run every benchmark in one go: `python -m benchmarks.run [--quick]`.

The default sizes are the ones the README reports and take a few minutes on a 2-core machine.
`--quick` runs each benchmark on small sizes without touching the recorded results: it checks
that the benchmarks still work (CI runs it), not how fast anything is.
"""

from __future__ import annotations

import argparse
import time

from benchmarks import emulator_serving, quality_gates, store_upsert, sync_comparison, writeback

QUICK_ARGS = {
    "store_upsert": ["--rows", "2000", "--page-size", "500", "--no-write"],
    "emulator_serving": ["--contacts", "3000", "--no-write"],
    "quality_gates": ["--quick"],
    "writeback": ["--records", "1000", "--no-write"],
    "sync_comparison": ["--quick"],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; results not recorded")
    args = parser.parse_args(argv)
    runs = {
        "store_upsert": store_upsert.main,
        "emulator_serving": emulator_serving.main,
        "quality_gates": quality_gates.main,
        "writeback": writeback.main,
        "sync_comparison": sync_comparison.main,
    }
    for name, run in runs.items():
        started = time.perf_counter()
        run(QUICK_ARGS[name] if args.quick else [])
        print(f"== {name} finished in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
