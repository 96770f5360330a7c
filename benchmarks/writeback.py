"""What the writeback's diff saves: `write_back` against sending every score every run.

    .venv/bin/python -m benchmarks.writeback [--records 100000] [--no-postgres] [--no-write]

Generates an org with `--records` live Contacts, starts the emulator over HTTPS, gets a token
through the OAuth flow and builds the real `SalesforceClient`. Scores are made directly as a
DataFrame in the shape `read_scores` returns (no sync or scoring run needed; the ids are the
org's Contact ids). Then, for the store on SQLite (a temporary file) and on PostgreSQL (a
temporary database), each with an empty `writeback_state`:

1. first writeback: every record is new, so every record is sent;
2. the same scores again: nothing changed, so nothing should be sent;
3. 1% of the records rescored (new fit, combined, tier and scored_at): only those are sent.

After runs 2 and 3 the naive approach runs on the same org with the same scores: every record
built and sent in 200-record sObject Collections requests, no diff against `writeback_state`.
After runs 1 and 3 (before the naive pass can write anything) a sample of the emulator's ground
truth, every rescored record included, is compared with the values the engine was given, and
run 1 must leave one `success` row per record in `writeback_state`: a figure of a wrong run is
refused. The emulator runs in this process (a thread), so its own CPU time is in the figures and
network latency to a real org is not: on a real org, each request saved is worth far more.
Writes benchmarks/results/writeback.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
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
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.emulator.testing import EmulatorControl, emulator_client, running_emulator
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.store import make_engine, upgrade
from gtm_pipeline.store.tables import writeback_state
from gtm_pipeline.writeback import batches, build_records, write_back
from gtm_pipeline.writeback.mapping import DEFAULT_FIELD_MAP

NAME = "writeback"
TENANT = "bench"
ENTITY_TYPE = "person"
SOBJECT = "Contact"
FIRST_SCORED_AT = datetime(2024, 6, 1, tzinfo=UTC)
CHANGED_SHARE = 0.01
TRUTH_SAMPLE = 1000
TIERS = np.array(["A", "B", "C", "D"], dtype=object)


class BenchmarkError(RuntimeError):
    """A run did not do what it should have: its figures would describe a wrong result."""


# --- scores ----------------------------------------------------------------------------------


def _tiers(combined: np.ndarray) -> np.ndarray:
    return TIERS[np.minimum(3, ((100 - combined) // 25).astype(int))]


def first_scores(ids: Sequence[str], salt: int) -> pd.DataFrame:
    """One score row per id, as `read_scores` returns them; `salt` makes each store's distinct.

    Distinct values per store mean the ground-truth check after a store's first run can only
    pass if that run's writes landed, not an earlier store's.
    """
    rng = np.random.default_rng(1000 + salt)
    fit = np.round(rng.uniform(0, 100, len(ids)), 2)
    engagement = np.round(rng.uniform(0, 100, len(ids)), 2)
    combined = np.round(0.6 * fit + 0.4 * engagement, 2)
    return pd.DataFrame(
        {
            "entity_type": ENTITY_TYPE,
            "external_id": list(ids),
            "fit_score": fit,
            "engagement_score": engagement,
            "combined_score": combined,
            "tier": _tiers(combined),
            "scored_at": FIRST_SCORED_AT + timedelta(minutes=salt),
        }
    )


def rescored(scores: pd.DataFrame, share: float) -> tuple[pd.DataFrame, list[str]]:
    """A copy of `scores` with every (1/share)-th record rescored; returns it and their ids."""
    step = max(1, round(1 / share))
    changed = scores.copy()
    rows = changed.index[::step]
    fit = np.round((changed.loc[rows, "fit_score"].to_numpy() + 7.5) % 100, 2)
    combined = np.round(0.6 * fit + 0.4 * changed.loc[rows, "engagement_score"].to_numpy(), 2)
    changed.loc[rows, "fit_score"] = fit
    changed.loc[rows, "combined_score"] = combined
    changed.loc[rows, "tier"] = _tiers(combined)
    changed.loc[rows, "scored_at"] = changed.loc[rows, "scored_at"] + timedelta(days=1)
    return changed, changed.loc[rows, "external_id"].tolist()


# --- the two ways of writing -----------------------------------------------------------------


def engine_run(
    client: SalesforceClient, engine: sa.Engine, scores: pd.DataFrame, label: str
) -> dict[str, Any]:
    """One `write_back`, timed; its request count is checked against the client's own count."""
    calls_before = client.calls_made
    started = time.perf_counter()
    result = write_back(client, engine, TENANT, ENTITY_TYPE, scores, DEFAULT_FIELD_MAP)
    seconds = time.perf_counter() - started
    if result.failed:
        raise BenchmarkError(f"{label}: {result.failed} records failed: {result.errors[:3]}")
    if result.requests != client.calls_made - calls_before:
        raise BenchmarkError(
            f"{label}: the engine counted {result.requests} requests, "
            f"the client sent {client.calls_made - calls_before}"
        )
    return _figures(len(scores), result.success, result.requests, seconds)


def naive_run(client: SalesforceClient, scores: pd.DataFrame, label: str) -> dict[str, Any]:
    """Every record built and sent in 200-record requests, no diff: what the engine replaces."""
    calls_before = client.calls_made
    started = time.perf_counter()
    records = build_records(scores, ENTITY_TYPE, DEFAULT_FIELD_MAP)
    sent = 0
    for batch in batches(records):
        answers = client.update_collection(batch, all_or_none=False)
        refused = [a for a in answers if a.get("success") is not True]
        if refused or len(answers) != len(batch):
            raise BenchmarkError(f"{label}: Salesforce refused records: {refused[:3]}")
        sent += len(batch)
    seconds = time.perf_counter() - started
    return _figures(len(scores), sent, client.calls_made - calls_before, seconds)


def _figures(records: int, sent: int, requests: int, seconds: float) -> dict[str, Any]:
    return {
        "records": records,
        "sent": sent,
        "requests": requests,
        "seconds": round(seconds, 3),
        "records_per_second": round(records / seconds) if seconds > 0 else None,
    }


# --- checks ----------------------------------------------------------------------------------


def check_ground_truth(
    control: EmulatorControl, scores: pd.DataFrame, ids: Sequence[str], label: str
) -> int:
    """Compare the emulator's stored fields of `ids` with the payloads built from `scores`."""
    wanted = set(ids)
    expected = {
        record["id"]: record
        for record in build_records(
            scores[scores["external_id"].isin(wanted)], ENTITY_TYPE, DEFAULT_FIELD_MAP
        )
    }
    truth = {row["Id"]: row for row in control.truth(SOBJECT) if row["Id"] in wanted}
    for record_id, record in expected.items():
        stored = truth.get(record_id)
        if stored is None:
            raise BenchmarkError(f"{label}: {record_id} is not in the emulator's ground truth")
        for field, value in record.items():
            if field in ("attributes", "id"):
                continue
            if not _same(stored.get(field), value):
                raise BenchmarkError(
                    f"{label}: {record_id}.{field} is {stored.get(field)!r}, expected {value!r}"
                )
    return len(expected)


def _same(stored: Any, sent: Any) -> bool:
    if isinstance(sent, float) and isinstance(stored, int | float):
        return math.isclose(stored, sent, abs_tol=1e-9)
    return stored == sent


def check_state(engine: sa.Engine, records: int, label: str) -> None:
    """After the first run every record has a settled `success` row."""
    query = sa.select(writeback_state.c.last_status, sa.func.count()).group_by(
        writeback_state.c.last_status
    )
    with engine.connect() as conn:
        counts: dict[str, int] = {status: n for status, n in conn.execute(query).all()}
    if counts != {"success": records}:
        raise BenchmarkError(f"{label}: writeback_state holds {counts}, expected {records} success")


def _sample(ids: Sequence[str], size: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(ids), size=min(size, len(ids)), replace=False)
    return [ids[i] for i in sorted(picked)]


# --- one store --------------------------------------------------------------------------------


def bench_store(
    label: str,
    url: str,
    client: SalesforceClient,
    control: EmulatorControl,
    ids: Sequence[str],
    salt: int,
) -> dict[str, Any]:
    """Runs 1-3 of the engine on one store, the naive pass after runs 2 and 3, and the checks."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            server = conn.exec_driver_sql(
                "SELECT sqlite_version()" if label == "sqlite" else "SHOW server_version"
            ).scalar_one()
        scores = first_scores(ids, salt)
        changed_scores, changed_ids = rescored(scores, CHANGED_SHARE)
        runs: dict[str, dict[str, Any]] = {}
        print(f"{label}: run 1, all {len(ids):,} records new")
        runs["first"] = {"engine": engine_run(client, engine, scores, f"{label} run 1")}
        check_state(engine, len(ids), f"{label} run 1")
        verified = check_ground_truth(control, scores, _sample(ids, TRUTH_SAMPLE, salt), label)
        if runs["first"]["engine"]["sent"] != len(ids):
            raise BenchmarkError(f"{label} run 1: {runs['first']['engine']['sent']} sent")
        print(f"{label}: run 2, nothing changed")
        runs["unchanged"], _ = _paired(client, engine, scores, f"{label} run 2", expect_sent=0)
        print(f"{label}: run 3, {len(changed_ids):,} records rescored")
        runs["one_percent"], checked = _paired(
            client,
            engine,
            changed_scores,
            f"{label} run 3",
            expect_sent=len(changed_ids),
            before_naive=lambda: check_ground_truth(
                control,
                changed_scores,
                sorted(set(changed_ids) | set(_sample(ids, TRUTH_SAMPLE, salt + 1))),
                f"{label} run 3",
            ),
        )
        verified += checked
    finally:
        engine.dispose()
    return {
        "database": label,
        "server_version": server,
        "changed_records": len(changed_ids),
        "record_checks": verified,
        "runs": runs,
    }


def _paired(
    client: SalesforceClient,
    engine: sa.Engine,
    scores: pd.DataFrame,
    label: str,
    *,
    expect_sent: int,
    before_naive: Callable[[], int] | None = None,
) -> tuple[dict[str, Any], int]:
    """The engine, then (after the optional ground-truth check) the naive pass, same scores.

    Returns the pair's figures and how many records the check verified.
    """
    measured = engine_run(client, engine, scores, label)
    if measured["sent"] != expect_sent:
        raise BenchmarkError(f"{label}: {measured['sent']} records sent, expected {expect_sent}")
    verified = before_naive() if before_naive else 0
    naive = naive_run(client, scores, f"{label} (naive)")
    figures = {
        "engine": measured,
        "naive": naive,
        "request_ratio": _ratio(naive["requests"], measured["requests"]),
        "time_ratio": _ratio(naive["seconds"], measured["seconds"]),
    }
    return figures, verified


def _ratio(naive: float, engine: float) -> float | None:
    """How many times more the naive approach needs; None (shown ∞) when the engine needed none."""
    return round(naive / engine, 1) if engine else None


# --- the whole run ------------------------------------------------------------------------------


def live_contact_ids(control: EmulatorControl) -> list[str]:
    return sorted(row["Id"] for row in control.truth(SOBJECT) if not row.get("IsDeleted"))


def run(records: int, postgres_url: str | None, write: bool = True) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    org = Org.generate(
        seed=42,
        counts={"Account": max(1, records // 10), "Contact": records, "Opportunity": 0},
        dirty_ratio=0.0,
    )
    generate_seconds = time.perf_counter() - started
    stores: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as state_dir,
        running_emulator(state_dir, org=org, daily_api_limit=10**9) as emulator,
    ):
        ids = live_contact_ids(emulator.control)
        client = emulator_client(emulator.info)
        with temporary_sqlite_url() as url:
            stores.append(bench_store("sqlite", url, client, emulator.control, ids, salt=1))
        if postgres_url is not None:
            with temporary_postgres_database(postgres_url) as url:
                stores.append(bench_store("postgresql", url, client, emulator.control, ids, 2))
    result = {
        "benchmark": NAME,
        "records": len(ids),
        "changed_share": CHANGED_SHARE,
        "batch_size": 200,
        "generate_seconds": round(generate_seconds, 2),
        "stores": stores,
        # Other work on the machine shows in every figure: the 1-minute load before and after.
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "recorded_at": utc_now_iso(),
        "machine": machine_info(),
    }
    if write:
        write_results(NAME, result, render_markdown(result))
    return result


# --- report -------------------------------------------------------------------------------------


def _rate(figures: Mapping[str, Any]) -> str:
    rate = figures["records_per_second"]
    return "-" if rate is None else f"{rate:,}"


def _times(ratio: float | None) -> str:
    return "∞" if ratio is None else f"{ratio:,}x"


def table_rows(store: Mapping[str, Any]) -> list[list[Any]]:
    runs = store["runs"]
    first = runs["first"]["engine"]
    rows = [
        [
            store["database"],
            "1: all new",
            f"{first['sent']:,}",
            first["requests"],
            f"{first['seconds']:.2f}",
            _rate(first),
            "(same)",
            "(same)",
            "(same)",
            "-",
            "-",
        ]
    ]
    for key, title in (("unchanged", "2: nothing changed"), ("one_percent", "3: 1% rescored")):
        pair = runs[key]
        engine, naive = pair["engine"], pair["naive"]
        rows.append(
            [
                store["database"],
                title,
                f"{engine['sent']:,}",
                engine["requests"],
                f"{engine['seconds']:.2f}",
                _rate(engine),
                naive["requests"],
                f"{naive['seconds']:.2f}",
                _rate(naive),
                _times(pair["request_ratio"]),
                _times(pair["time_ratio"]),
            ]
        )
    return rows


def render_markdown(result: Mapping[str, Any]) -> str:
    machine = result["machine"]
    table = markdown_table(
        [
            "store",
            "run",
            "sent",
            "requests",
            "seconds",
            "records/s",
            "naive requests",
            "naive seconds",
            "naive records/s",
            "requests saved (naive/engine)",
            "time (naive/engine)",
        ],
        [row for store in result["stores"] for row in table_rows(store)],
    )
    verified = ", ".join(f"{s['database']} {s['record_checks']:,}" for s in result["stores"])
    load = result["load_average"]
    return "\n".join(
        [
            "# Writeback benchmark",
            "",
            f"`python -m benchmarks.writeback --records {result['records']}`: `write_back` with "
            "the real `SalesforceClient` over HTTPS to the emulator (in this process), "
            f"{result['records']:,} scored Contacts, 200 records a request. The naive approach "
            "sends every record every run (no diff against `writeback_state`), on the same org "
            "right after the engine's run. records/s = scored records covered per second of "
            "wall time (all of them, sent or not).",
            "",
            table,
            "",
            "Run 1: every record is new, so the naive approach would send exactly what the "
            "engine sends. ∞: the engine made no request at all. Ground truth checked in the "
            "emulator after runs 1 and 3 (a random sample and every rescored record): "
            f"{verified} record checks, every one equal to what was sent.",
            f"Org generation (not measured above): {result['generate_seconds']} s.",
            "",
            f"Machine: {machine['platform']}, {machine['cpu_count']} CPUs, "
            f"Python {machine['python']}, 1-minute load average {load[0]} before and {load[1]} "
            f"after. Recorded {result['recorded_at']}.",
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="scored Contacts")
    add_store_arguments(parser)
    args = parser.parse_args(argv)
    if args.records < 100:
        parser.error("--records must be at least 100 (1% of them are rescored)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    postgres_url = None if args.no_postgres else args.postgres_url or postgres_admin_url()
    result = run(args.records, postgres_url, write=not args.no_write)
    print(render_markdown(result))
    print(json.dumps({s["database"]: s["runs"] for s in result["stores"]}, indent=2))
    return result


if __name__ == "__main__":
    main()
