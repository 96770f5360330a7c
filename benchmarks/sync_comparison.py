"""The connector against the raw floor and dlt, in one run on one machine: full, Bulk, incremental.

    .venv/bin/python -m benchmarks.sync_comparison [--contacts N --accounts N --opportunities N]
        [--changes 1000] [--gates-rows 1000000] [--writeback-records 100000]
        [--memory-sizes 100000,1000000] [--rounds 2] [--no-postgres] [--no-dlt] [--quick]
        [--no-write]

An emulator serving a generated org runs in a child process (its memory is not counted). Every
measured scenario runs in its own child process and reports its peak RSS; the parent resets the
emulator's call statistics before each and reads them after, so API calls are what reached the
server (OAuth calls excluded: one token is obtained up front and handed to every scenario).

Rows, in order: the raw floor (every page of Account, Contact, Opportunity with plain `requests`
and `json`, the connector's SOQL and batch size); the Bulk raw floor (one `queryAll` job per
object with plain `requests`, result sets parsed by pyarrow: benchmarks/bulk_floor.py, the most
the Bulk path can reach on this emulator); the connector's full sync through
`sync_entity` on REST pages, then through Bulk API 2.0, then dlt (benchmarks/dlt_salesforce.py),
each on SQLite and PostgreSQL (fresh databases); then `--changes` Contacts updated through the
emulator's control API and the incremental syncs of the connector and of dlt on the databases
their full syncs filled (the changed values are checked in the connector's store); the
writeback of `--writeback-records` changed scores (benchmarks/writeback.py's `engine_run`); the
three quality gates over `--gates-rows` rows (benchmarks/quality_gates.py's page); and the
connector's REST and Bulk full syncs of Contacts on two org sizes (`--memory-sizes`), for
memory growth, and the incremental sync of `--changes` Contacts on the larger org (about 1.1
million records by default), once the Bulk row has loaded its Contacts. The floors and the full
syncs (connector and dlt) run `--rounds` times, one round after the other, and each row keeps its
fastest run (the others are in its detail): the ratios then compare runs that the machine
disturbed least.
Writes benchmarks/results/sync_comparison.{json,md}; `--quick` runs small sizes and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

import sqlalchemy as sa

from benchmarks import (
    add_store_arguments,
    machine_info,
    postgres_admin_url,
    publish,
    temporary_postgres_database,
    temporary_sqlite_url,
    utc_now_iso,
)
from benchmarks import sync_scenarios as scenarios
from benchmarks.dlt_salesforce import dlt_available
from benchmarks.isolation import ScenarioFailed, emulator_process, run_isolated
from benchmarks.sync_report import complete, fastest_runs, render_markdown
from gtm_pipeline.emulator.testing import EmulatorControl, obtain_tokens
from gtm_pipeline.store import make_engine, persons, upgrade

NAME = "sync_comparison"
OAUTH_KINDS = ("token", "authorize", "revoke")
CHANGED_TITLE = "Benchmark changed title"
EMULATOR_OPTIONS = {"daily_api_limit": 10**9, "session_lifetime": 86_400.0}
DEFAULTS = {
    "accounts": 15_000,
    "contacts": 150_000,
    "opportunities": 40_000,
    "changes": 1_000,
    "gates_rows": 1_000_000,
    "writeback_records": 100_000,
    "memory_sizes": "100000,1000000",
}
QUICK = {
    "accounts": 300,
    "contacts": 3_000,
    "opportunities": 600,
    "changes": 100,
    "gates_rows": 20_000,
    "writeback_records": 1_000,
    "memory_sizes": "1000,4000",
}


class BenchmarkError(RuntimeError):
    """A run did not do what it should have: its figures would describe a wrong result."""


# --- measuring --------------------------------------------------------------------------------


def data_calls(stats: Mapping[str, Any]) -> int:
    """API calls the emulator counted, OAuth excluded (the token was obtained before)."""
    calls = stats["calls"]
    return int(stats["total"]) - sum(int(calls.get(kind, 0)) for kind in OAUTH_KINDS)


class Bench:
    """The emulator a run measures against, and the rows measured so far."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.control = EmulatorControl(info)
        self.token = obtain_tokens(info)["access_token"]
        self.rows: list[dict[str, Any]] = []

    def measure(
        self, key: str, label: Mapping[str, str], fn: Callable[..., dict], *args: Any
    ) -> dict[str, Any]:
        """Run `fn(info, token, *args)` in a child process; record and return its row.

        A scenario whose work runs in a process of its own (Airbyte's source) returns that
        process's `peak_rss_mb`, which is then the row's.
        """
        self.control.reset_stats()
        result, peak = run_isolated(fn, self.info, self.token, *args)
        peak = result.pop("peak_rss_mb", peak)
        calls = data_calls(self.control.stats())
        return self.add(key, label, result, peak_rss_mb=peak, api_calls=calls)

    def add(
        self, key: str, label: Mapping[str, str], result: Mapping[str, Any], **figures: Any
    ) -> dict[str, Any]:
        seconds = float(result["seconds"])
        row = {
            "key": key,
            **label,
            "available": True,
            "records": int(result["records"]),
            "seconds": round(seconds, 3),
            "records_per_second": round(result["records"] / seconds) if seconds > 0 else None,
            **{k: (round(v, 1) if isinstance(v, float) else v) for k, v in figures.items()},
            "detail": {k: v for k, v in result.items() if k not in ("records", "seconds")},
        }
        self.rows.append(row)
        print(_progress_line(row), flush=True)
        return row

    def measure_optional(
        self, key: str, label: Mapping[str, str], fn: Callable[..., dict], *args: Any
    ) -> None:
        """`measure`, but a failure marks the row failed (traceback on stderr) and goes on.

        For rows that reuse code outside the connector (dlt, the writeback benchmark): one of
        them breaking must not throw away the minutes of figures measured before it.
        """
        try:
            self.measure(key, label, fn, *args)
        except ScenarioFailed as exc:
            print(exc, file=sys.stderr, flush=True)
            last = str(exc).strip().splitlines()[-1]
            self.unavailable(key, label, f"failed in this run ({last[:160]})")

    def keep_fastest(self) -> None:
        """Rows measured in several `--rounds` collapse to their fastest run."""
        self.rows = fastest_runs(self.rows)

    def available(self, key: str) -> bool:
        return any(r["key"] == key and r["available"] for r in self.rows)

    def unavailable(self, key: str, label: Mapping[str, str], why: str) -> None:
        self.rows.append({"key": key, **label, "available": False, "note": why})
        print(f"{label['scenario']} ({label.get('store', '-')}): not available: {why}", flush=True)


def _progress_line(row: Mapping[str, Any]) -> str:
    return (
        f"{row['scenario']:<28} {row.get('path', '-'):<5} {row.get('store', '-'):<10} "
        f"{row['records']:>9,} rec {row['seconds']:8.2f} s {row['records_per_second'] or 0:>8,} "
        f"rec/s {row.get('api_calls', '-')!s:>5} calls {row.get('peak_rss_mb', '-')!s:>7} MB"
    )


def _label(scenario: str, path: str = "-", store: str = "-") -> dict[str, str]:
    return {"scenario": scenario, "path": path, "store": store}


# --- databases --------------------------------------------------------------------------------


@contextmanager
def fresh_store(kind: str, postgres_url: str, migrate: bool = True) -> Iterator[str]:
    """A throw-away database of `kind` ("sqlite" or "postgresql"), migrated unless told not to."""
    context = (
        temporary_sqlite_url()
        if kind == "sqlite"
        else temporary_postgres_database(postgres_url, prefix="gtm_bench_sync")
    )
    with context as url:
        if migrate:
            engine = make_engine(url)
            try:
                upgrade(engine)
            finally:
                engine.dispose()
        yield url


def pick_person_ids(url: str, count: int) -> list[str]:
    """`count` loaded person ids, spread over the table, for changes and writeback."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ids = (
                conn.execute(
                    sa.select(persons.c.external_id)
                    .where(persons.c.is_deleted.is_(False))
                    .order_by(persons.c.external_id)
                )
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    if len(ids) < count:
        raise BenchmarkError(f"only {len(ids)} persons were loaded, {count} needed")
    step = len(ids) / count
    return [ids[int(i * step)] for i in range(count)]


def count_changed(url: str, ids: list[str]) -> int:
    """How many of `ids` carry the changed title in the store."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            titles = dict(
                conn.execute(
                    sa.select(persons.c.external_id, persons.c.title).where(
                        persons.c.external_id.in_(ids)
                    )
                ).all()
            )
    finally:
        engine.dispose()
    return sum(1 for i in ids if (titles.get(i) or "").startswith(CHANGED_TITLE))


# --- the phases --------------------------------------------------------------------------------


def full_syncs(
    bench: Bench, stores: Mapping[str, str], postgres_url: str, *, kept: bool = True
) -> None:
    """The raw floor, then the connector's full syncs: REST into `stores` (kept for the
    incremental rows when `kept`, else fresh ones), Bulk (fresh), and the default path (fresh):
    each object through Bulk above the connector's threshold, else through REST."""
    bench.measure(
        "floor",
        _label("raw floor (requests + json)", "REST"),
        scenarios.raw_floor,
        scenarios.BATCH_SIZE,
    )
    if scenarios.bulk_supported():
        soqls = scenarios.bulk_soqls(bench.info, bench.token)
        bench.measure(
            "floor_bulk", _label("raw floor, Bulk (requests + pyarrow)", "Bulk"),
            scenarios.bulk_floor, soqls,
        )  # fmt: skip
    for kind, url in stores.items():
        label = _label("connector full sync", "REST", kind)
        if kept:
            bench.measure(f"rest_{kind}", label, scenarios.connector_sync, url, True, False)
            continue
        with fresh_store(kind, postgres_url) as fresh:
            bench.measure(f"rest_{kind}", label, scenarios.connector_sync, fresh, True, False)
    for kind in stores:
        label = _label("connector full sync", "Bulk", kind)
        if not scenarios.bulk_supported():
            bench.unavailable(f"bulk_{kind}", label, "the connector has no Bulk API 2.0 path yet")
            continue
        with fresh_store(kind, postgres_url) as url:
            row = bench.measure(f"bulk_{kind}", label, scenarios.connector_sync, url, True, True)
        per_entity = row["detail"]["per_entity"]
        rest = {e: d["bulk_fallback"] for e, d in per_entity.items() if d["extraction"] != "bulk"}
        if rest:
            raise BenchmarkError(f"the Bulk run read through REST instead: {rest}")
    for kind in stores:
        # What a user runs: Bulk for an object above the threshold (default 200,000), else REST.
        label = _label("connector full sync", "default", kind)
        with fresh_store(kind, postgres_url) as url:
            bench.measure(f"default_{kind}", label, scenarios.connector_sync, url, True, None)


def dlt_runs(
    bench: Bench, stores: Mapping[str, str], dirs: Mapping[str, str], *, first: bool
) -> None:
    """dlt's full run (first) or incremental run into `stores`, its state kept in `dirs`.

    dlt is the outside comparison point: a failure of it marks its row, not the whole run.
    """
    scenario = "dlt full sync" if first else "dlt incremental"
    for kind, url in stores.items():
        key = f"dlt_{'full' if first else 'incremental'}_{kind}"
        if not first and not bench.available(f"dlt_full_{kind}"):
            continue
        bench.measure_optional(
            key, _label(scenario, "REST", kind), scenarios.dlt_sync, kind, url, dirs[kind]
        )


def dlt_full_round(bench: Bench, kinds: list[str], postgres_url: str) -> None:
    """Another dlt full run per store, into fresh databases and state (a `--rounds` repeat)."""
    for kind in kinds:
        if not bench.available(f"dlt_full_{kind}"):
            continue
        with (
            fresh_store(kind, postgres_url, migrate=False) as url,
            tempfile.TemporaryDirectory() as state,
        ):
            dlt_runs(bench, {kind: url}, {kind: state}, first=True)


def incremental_syncs(
    bench: Bench,
    stores: Mapping[str, str],
    changes: int,
    *,
    key: str = "incremental",
    scenario: str = "connector incremental",
) -> list[dict[str, Any]]:
    """Change `changes` loaded Contacts in the org, sync incrementally, check the store has them.

    Rows `{key}_{store}`; returns them."""
    ids = pick_person_ids(next(iter(stores.values())), changes)
    bench.control.mutate(
        [
            {
                "op": "update",
                "object": "Contact",
                "id": record_id,
                "fields": {"Title": f"{CHANGED_TITLE} {n}"},
            }
            for n, record_id in enumerate(ids)
        ]
    )
    rows = []
    for kind, url in stores.items():
        row = bench.measure(
            f"{key}_{kind}",
            _label(scenario, "REST", kind),
            scenarios.connector_sync,
            url,
            False,
            None,
        )
        modes = {d["mode"] for d in row["detail"]["per_entity"].values()}
        if modes != {"incremental"}:
            raise BenchmarkError(f"{kind}: the second sync ran as {modes}, not incremental")
        found = count_changed(url, ids)
        if found != changes:
            raise BenchmarkError(f"{kind}: {found} of {changes} changes reached the store")
        row["changes"] = changes
        row["records"], row["rows_read"] = changes, row["records"]
        row["records_per_second"] = round(changes / row["seconds"]) if row["seconds"] else None
        rows.append(row)
    return rows


def writeback_row(bench: Bench, url: str, count: int) -> None:
    label = _label("score writeback", "REST", "sqlite")
    missing = writeback_missing()
    if missing:
        bench.unavailable("writeback", label, missing)
        return
    ids = pick_person_ids(url, count)
    bench.measure_optional("writeback", label, scenarios.writeback_run, url, ids)


def writeback_missing() -> str | None:
    """Why the writeback benchmark cannot be reused here, or None when it can."""
    try:
        from benchmarks import writeback
    except ImportError as exc:
        return f"benchmarks/writeback.py cannot be imported ({exc})"
    names = ("engine_run", "first_scores", "check_state")
    absent = [n for n in names if not hasattr(writeback, n)]
    return f"benchmarks/writeback.py lacks {', '.join(absent)}" if absent else None


def gates_row(bench: Bench, rows: int, repeat: int) -> None:
    result, peak = run_isolated(scenarios.quality_gates_run, rows, repeat)
    bench.add(
        "gates", _label("quality gates (3)", "-", "memory"), result, peak_rss_mb=peak, api_calls=0
    )


def memory_org(size: int) -> dict[str, int]:
    """The org of one memory row: `size` Contacts, a tenth as many Accounts and a twenty-fifth
    as many Opportunities (synced only for the large org's incremental row)."""
    return {"Account": max(1, size // 10), "Contact": size, "Opportunity": max(1, size // 25)}


def memory_rows(
    bench: Bench, infos: Mapping[str, dict[str, Any]], sizes: list[int], changes: int
) -> None:
    """The connector's full sync of Contacts on orgs of each size, through REST pages and
    through Bulk result sets (the path a large org takes by default), for memory growth. The
    largest org, once its Bulk row has loaded it, also gets the incremental sync of `changes`
    changed Contacts."""
    for path, bulk in (("rest", False), ("bulk", True)):
        if bulk and not scenarios.bulk_supported():
            continue
        for size in sizes:
            sized = Bench(infos[f"memory_{size}"])
            label = _label("memory: contacts full sync", "Bulk" if bulk else "REST", "sqlite")
            with fresh_store("sqlite", "") as url:
                row = sized.measure(
                    f"memory_{path}_{size}",
                    label,
                    scenarios.connector_sync,
                    url,
                    True,
                    bulk,
                    ("persons",),
                )
                row["org_contacts"] = size
                bench.rows.append(row)
                if bulk and size == sizes[-1]:
                    bench.rows.append(large_org_incremental(sized, url, size, changes))


def large_org_incremental(bench: Bench, url: str, size: int, changes: int) -> dict[str, Any]:
    """The incremental sync of `changes` changed Contacts on the memory org of `size` Contacts,
    which are in `url` already: its other objects are synced in full first (not measured), so
    that every entity runs incrementally, as in the scheduled syncs of a connected org."""
    others = tuple(name for name in scenarios.ALL_ENTITIES if name != "persons")
    run_isolated(scenarios.connector_sync, bench.info, bench.token, url, True, None, others)
    (row,) = incremental_syncs(
        bench,
        {"sqlite": url},
        changes,
        key="large_incremental",
        scenario="connector incremental, large org",
    )
    row["org_records"] = sum(memory_org(size).values())
    return row


# --- the run -------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    postgres_url = args.postgres_url or postgres_admin_url()
    kinds = ["sqlite"] if args.no_postgres else ["sqlite", "postgresql"]
    counts = {"Account": args.accounts, "Contact": args.contacts, "Opportunity": args.opportunities}
    use_dlt = not args.no_dlt and dlt_available()
    orgs = {"main": counts, **{f"memory_{n}": memory_org(n) for n in args.memory_sizes}}
    with emulator_process(
        orgs, seed=args.seed, dirty_ratio=args.dirty_ratio, **EMULATOR_OPTIONS
    ) as (infos, generated):
        bench = Bench(infos["main"])
        with ExitStack() as stack:
            stores = {k: stack.enter_context(fresh_store(k, postgres_url)) for k in kinds}
            dlt_dirs = {k: stack.enter_context(tempfile.TemporaryDirectory()) for k in kinds}
            dlt_stores = {
                k: stack.enter_context(fresh_store(k, postgres_url, migrate=False)) for k in kinds
            }
            for number in range(args.rounds):
                full_syncs(bench, stores, postgres_url, kept=number == 0)
                if use_dlt and number == 0:
                    dlt_runs(bench, dlt_stores, dlt_dirs, first=True)
                elif use_dlt:
                    dlt_full_round(bench, kinds, postgres_url)
            bench.keep_fastest()
            if not use_dlt:
                why = (
                    "--no-dlt"
                    if args.no_dlt
                    else "dlt is not installed (pip install -e '.[bench]')"
                )
                for k in kinds:
                    bench.unavailable(f"dlt_full_{k}", _label("dlt full sync", "REST", k), why)
            incremental_syncs(bench, stores, args.changes)
            if use_dlt:
                dlt_runs(bench, dlt_stores, dlt_dirs, first=False)
            writeback_row(bench, stores["sqlite"], args.writeback_records)
        gates_row(bench, args.gates_rows, args.gates_repeat)
        memory_rows(bench, infos, args.memory_sizes, args.changes)
    return {
        "benchmark": NAME,
        "org": counts,
        "dirty_ratio": args.dirty_ratio,
        "seed": args.seed,
        "batch_size": scenarios.BATCH_SIZE,
        "changes": args.changes,
        "gates_rows": args.gates_rows,
        "writeback_records": args.writeback_records,
        "memory_sizes": args.memory_sizes,
        "rounds": args.rounds,
        "generate_seconds": generated,
        "total_seconds": round(time.perf_counter() - started, 1),
        "bulk_available": scenarios.bulk_supported(),
        "dlt_version": _dlt_version() if use_dlt else None,
        "rows": bench.rows,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "recorded_at": utc_now_iso(),
        "machine": machine_info(),
    }


def _dlt_version() -> str:
    from importlib.metadata import version

    return version("dlt")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, nothing recorded")
    for name in ("accounts", "contacts", "opportunities"):
        parser.add_argument(f"--{name}", type=int, default=None, help=f"{name} in the org")
    parser.add_argument(
        "--changes", type=int, default=None, help="Contacts changed for incremental"
    )
    parser.add_argument("--gates-rows", type=int, default=None, help="rows through the gates")
    parser.add_argument("--gates-repeat", type=int, default=3, help="gate runs; best kept")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="runs of the floors and full syncs, fastest kept (default 2; 1 with --quick)",
    )
    parser.add_argument("--writeback-records", type=int, default=None, help="scores written back")
    parser.add_argument("--memory-sizes", default=None, help="two Contact counts, e.g. 1000,4000")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dirty-ratio", type=float, default=0.05)
    parser.add_argument("--no-dlt", action="store_true", help="skip the dlt rows")
    add_store_arguments(parser)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULTS
    for name, default in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.quick:
        args.no_write, args.gates_repeat = True, 1
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    try:
        args.memory_sizes = [int(s) for s in str(args.memory_sizes).split(",")]
    except ValueError:
        parser.error("--memory-sizes must be whole numbers separated by commas")
    if len(args.memory_sizes) != 2 or not 0 < args.memory_sizes[0] < args.memory_sizes[1]:
        parser.error("--memory-sizes takes two positive Contact counts, the smaller first")
    for name in (
        "accounts",
        "contacts",
        "opportunities",
        "changes",
        "gates_rows",
        "writeback_records",
        "gates_repeat",
        "rounds",
    ):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    # Both pick Contacts the full sync loaded: dirty ones are quarantined, so leave a margin.
    if max(args.changes, args.writeback_records) > args.contacts * 0.8:
        parser.error("--changes and --writeback-records must be at most 80% of --contacts")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    payload = complete(run(args))
    publish(NAME, payload, render_markdown(payload), write=not args.no_write)
    return payload


if __name__ == "__main__":
    main()
