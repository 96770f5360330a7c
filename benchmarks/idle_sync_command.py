"""How long `gtm-pipeline sync --tenant T` takes when nothing changed, at two checkouts.

    .venv/bin/python -m benchmarks.idle_sync_command [--runs 5] [--before PATH] [--no-write]

An emulator (this checkout's) serves a small org. For this checkout, and for the checkout at
`--before` if given (run with `PYTHONPATH` pointing at it), a fresh store and Dagster home are
made, the tenant is connected (tokens from the emulator's OAuth flow), synced in full once with
that checkout's command, then `sync --tenant T` runs `--runs` times with nothing changed in
Salesforce; each run's wall time is measured from outside the process (start-up and imports
included, as a user waits for it). The two checkouts alternate, run by run.

Writes benchmarks/results/idle_sync_command.{json,md} unless `--no-write`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks import machine_info, publish, utc_now_iso
from gtm_pipeline.emulator.testing import (
    running_emulator,
    salesforce_environment,
    store_connected_tenant,
)
from gtm_pipeline.store import make_engine

NAME = "idle_sync_command"
TENANT = "acme"
ORG = {"Account": 50, "Contact": 300, "Opportunity": 60}
COMMAND = "from gtm_pipeline.cli import main; main()"


class Checkout:
    """One checkout's command, with its own store and Dagster home."""

    def __init__(self, label: str, root: Path | None, info: dict, folder: Path) -> None:
        self.label = label
        home = folder / label
        home.mkdir()
        self.home = home  # the working directory too: `python -c` puts it first on sys.path
        key = secrets.token_hex(32)
        self.env = {
            **os.environ,
            **salesforce_environment(info),
            "GTM_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "DATABASE_URL": f"sqlite:///{home / 'warehouse.db'}",
            "CONNECTOR_ENCRYPTION_KEY": key,
        }
        if root is not None:
            self.env["PYTHONPATH"] = str(root)
        self.run("-c", "from gtm_pipeline.store import upgrade; import os; "
                 "upgrade(os.environ['DATABASE_URL'])")  # fmt: skip
        engine = make_engine(self.env["DATABASE_URL"])
        try:
            store_connected_tenant(engine, info, key, TENANT)
        finally:
            engine.dispose()
        self.sync("--full")

    def run(self, *args: str) -> float:
        started = time.perf_counter()
        done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=600,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{self.label}: {args[-1]} failed: {done.stderr[-2000:]}")
        return seconds

    def sync(self, *options: str) -> float:
        return self.run("-c", COMMAND, "sync", "--tenant", TENANT, *options)


def measure(runs: int, before: Path | None) -> dict[str, Any]:
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gtm_bench_idle_")))
        emulator = stack.enter_context(
            running_emulator(folder / "emulator", counts=ORG, seed=42, auto_approve=True)
        )
        checkouts = [Checkout("after", None, emulator.info, folder)]
        if before is not None:
            checkouts.insert(0, Checkout("before", before, emulator.info, folder))
        seconds: dict[str, list[float]] = {c.label: [] for c in checkouts}
        for _ in range(runs):
            for checkout in checkouts:
                seconds[checkout.label].append(round(checkout.sync(), 3))
    return {
        label: {"runs": values, "median_seconds": round(statistics.median(values), 3)}
        for label, values in seconds.items()
    }


def render(result: dict[str, Any], before: str | None, machine: dict, recorded_at: str) -> str:
    lines = [
        "# An idle `gtm-pipeline sync --tenant T`",
        "",
        f"`python -m benchmarks.idle_sync_command`: one tenant on an emulator org ({ORG}), "
        "synced in full once, then `sync` with nothing changed, timed from outside the process; "
        f"before = {before or '-'}, after = this checkout, alternated. One run on "
        f"{machine['platform']}, {machine['cpu_count']} CPUs, {recorded_at}.",
        "",
        "| checkout | runs (s) | median s |",
        "| --- | --- | --- |",
    ]
    for label, figures in result.items():
        runs = ", ".join(f"{s:.2f}" for s in figures["runs"])
        lines.append(f"| {label} | {runs} | {figures['median_seconds']:.2f} |")
    if "before" in result:
        ratio = result["after"]["median_seconds"] / result["before"]["median_seconds"]
        lines += ["", f"after / before: {ratio:.2f}x (target: under 0.5x)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", type=Path, default=None, help="an earlier checkout's root")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = measure(args.runs, args.before)
    payload = {
        "benchmark": NAME,
        "results": result,
        "before": str(args.before) if args.before else None,
        "recorded_at": utc_now_iso(),
        "machine": machine_info(),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    before = str(args.before) if args.before else None
    markdown = render(result, before, payload["machine"], payload["recorded_at"])
    publish(NAME, payload, markdown, write=not args.no_write)
    return payload


if __name__ == "__main__":
    main()
