"""The benchmarks still run (quick sizes, nothing recorded). Timings are not checked here."""

from __future__ import annotations

import math

import pytest

from benchmarks import (
    RESULTS_DIR,
    emulator_serving,
    quality_gates,
    reconciliation,
    run,
    small_pages,
    store_upsert,
    sync_comparison,
    sync_report,
    writeback,
)
from benchmarks.run import QUICK_ARGS
from gtm_pipeline.sync.entities import SYNC_ORDER


def test_store_upsert_benchmark_runs_on_both_databases():
    before = (RESULTS_DIR / "store_upsert.json").read_text()
    payload = store_upsert.main(["--rows", "1000", "--page-size", "250", "--no-write"])
    passes = {(r["database"], r["pass"]) for r in payload["results"]}
    assert passes == {
        (db, p) for db in ("sqlite", "postgresql") for p in ("insert", "first sync", "update")
    }
    assert all(r["rows"] == 1000 and r["rows_per_second"] > 0 for r in payload["results"])
    assert (RESULTS_DIR / "store_upsert.json").read_text() == before


def test_emulator_serving_benchmark_reads_every_record():
    result = emulator_serving.main(["--contacts", "2500", "--no-write"])
    assert result["read"]["records"] == result["read"]["total_size"] >= 2500
    assert result["read"]["pages"] == 2


def test_quality_gates_benchmark_agrees_with_the_per_record_loop():
    before = (RESULTS_DIR / "quality_gates.json").read_text()
    payload = quality_gates.main(["--quick", "--no-write"])
    stats = payload["result"]["stats"]
    assert stats["input"] == payload["rows"]
    assert stats["passed"] + stats["failed"] + stats["duplicates_removed"] == stats["input"]
    assert payload["result"]["speedup"] > 0
    assert (RESULTS_DIR / "quality_gates.json").read_text() == before


def test_small_pages_benchmark_gates_every_record_and_records_nothing():
    before = (RESULTS_DIR / "small_pages.json").read_text()
    payload = small_pages.main(["--quick"])
    assert payload["pages"] == 21 and payload["rounds"] == 3
    assert payload["kept"] + payload["rejected"] >= payload["pages"] * 5
    assert payload["rejected"] > 0 and payload["ms_per_page"] > 0
    assert (RESULTS_DIR / "small_pages.json").read_text() == before


def test_writeback_benchmark_sends_only_changes_and_the_naive_pass_sends_everything():
    before = (RESULTS_DIR / "writeback.json").read_text()
    payload = writeback.main(QUICK_ARGS["writeback"])
    records = payload["records"]
    full = math.ceil(records / 200)
    assert [s["database"] for s in payload["stores"]] == ["sqlite", "postgresql"]
    for store in payload["stores"]:
        runs, changed = store["runs"], store["changed_records"]
        assert changed == math.ceil(records * payload["changed_share"])
        assert (runs["first"]["engine"]["sent"], runs["first"]["engine"]["requests"]) == (
            records,
            full,
        )
        assert (runs["unchanged"]["engine"]["sent"], runs["unchanged"]["engine"]["requests"]) == (
            0,
            0,
        )
        assert runs["one_percent"]["engine"]["sent"] == changed
        assert runs["one_percent"]["engine"]["requests"] == math.ceil(changed / 200)
        for key in ("unchanged", "one_percent"):
            assert (runs[key]["naive"]["sent"], runs[key]["naive"]["requests"]) == (records, full)
        assert runs["one_percent"]["request_ratio"] == round(full / math.ceil(changed / 200), 1)
        assert store["record_checks"] > changed
    assert (RESULTS_DIR / "writeback.json").read_text() == before


def test_sync_comparison_quick_run_measures_every_row_and_records_nothing():
    results = RESULTS_DIR / "sync_comparison.json"
    before = results.read_text() if results.exists() else None
    payload = sync_comparison.main(QUICK_ARGS["sync_comparison"])
    rows = {r["key"]: r for r in payload["rows"]}
    stores = ("sqlite", "postgresql")
    paths = ("rest", "bulk", "default", "dlt_full", "incremental", "dlt_incremental")
    memory = {f"memory_{p}_{n}" for p in ("rest", "bulk") for n in payload["memory_sizes"]}
    expected = (
        {"floor", "floor_bulk", "writeback", "gates", "large_incremental_sqlite"}
        | memory
        | {f"{p}_{s}" for p in paths for s in stores}
    )
    dlt_ran = payload["dlt_version"] is not None
    assert (
        set(rows) == expected
        if dlt_ran
        else expected - set(rows) == {f"dlt_incremental_{s}" for s in stores}
    )
    floor = rows["floor"]["records"]
    assert floor > 0
    if payload["bulk_available"]:  # queryAll: the recycle bins' records too
        assert rows["floor_bulk"]["records"] >= floor
    for store in stores:
        assert rows[f"rest_{store}"]["records"] == floor  # same query, every record read
        assert rows[f"bulk_{store}"]["available"] is payload["bulk_available"]
        if payload["bulk_available"]:
            assert rows[f"bulk_{store}"]["records"] == floor
        default = rows[f"default_{store}"]
        assert default["records"] == floor
        extraction = {e: d["extraction"] for e, d in default["detail"]["per_entity"].items()}
        assert extraction == dict.fromkeys(extraction, "rest")  # a quick org is under 200,000
        incremental = rows[f"incremental_{store}"]
        assert incremental["records"] == payload["changes"]
        calls = [e["api_calls"] for e in incremental["detail"]["per_entity"].values()]
        assert calls == [2, 2, 2]  # one query page and one queryAll page per entity
        dlt = rows[f"dlt_full_{store}"]
        assert dlt["records"] == floor if dlt_ran else "not installed" in dlt["note"]
    # The large memory org: its Contacts loaded by the Bulk row, then every entity incremental.
    large = rows["large_incremental_sqlite"]
    assert large["records"] == payload["changes"]
    assert [e["mode"] for e in large["detail"]["per_entity"].values()] == ["incremental"] * 3
    assert [e["api_calls"] for e in large["detail"]["per_entity"].values()] == [2, 2, 2]
    contacts = rows[f"memory_bulk_{payload['memory_sizes'][-1]}"]["records"]
    assert large["org_records"] > contacts >= payload["memory_sizes"][-1]
    assert all(r["peak_rss_mb"] > 0 for r in rows.values() if r["available"])
    assert all(r["api_calls"] > 0 for k, r in rows.items() if k != "gates" and r["available"])
    assert {t["verdict"] for t in payload["targets"]} <= {"met", "missed", "not available"}
    assert "## Targets" in sync_report.render_markdown(payload)
    assert (results.read_text() if results.exists() else None) == before


def test_reconciliation_quick_run_finds_nothing_then_repairs_the_drift_and_records_nothing():
    results = RESULTS_DIR / "reconciliation.json"
    before = results.read_text() if results.exists() else None
    payload = reconciliation.main(QUICK_ARGS["reconciliation"])
    rows = {r["key"]: r for r in payload["rows"]}
    steps = ("full", "clean", "drift")
    assert set(rows) == {f"{s}_{p}_sqlite" for s in steps for p in ("rest", "bulk")}
    contacts = payload["org"]["Contact"]
    expected = payload["drift"]["expected"]
    assert sum(expected[c] for c in ("missing", "stale", "ghosts")) == payload["drift"]["records"]
    assert payload["drift"]["records"] == round(contacts * 0.01)
    for path in ("rest", "bulk"):
        assert rows[f"full_{path}_sqlite"]["records"] >= contacts
        clean, drift = rows[f"clean_{path}_sqlite"], rows[f"drift_{path}_sqlite"]
        assert clean["detail"]["listing"] == drift["detail"]["listing"] == path
        assert clean["detail"]["outcome"] == "clean" and clean["records"] >= contacts
        assert drift["detail"]["before"] == expected
        assert drift["detail"]["outcome"] == "repaired"
        assert not any(drift["detail"]["after"].values())
        assert drift["detail"]["records_reread"] == expected["missing"] + expected["stale"]
        assert drift["detail"]["records_flagged_deleted"] == expected["ghosts"]
        assert drift["api_calls"] > clean["api_calls"] > 0
    # REST: one queryAll page per 2,000 records; Bulk: create, poll, one result set (+ the job's
    # own calls), whatever the org's size up to 250,000 records.
    pages = -(-rows["clean_rest_sqlite"]["records"] // 2000)
    assert pages <= rows["clean_rest_sqlite"]["api_calls"] <= pages + 1
    assert rows["clean_bulk_sqlite"]["api_calls"] <= 8
    verdicts = {t["target"]: t["verdict"] for t in payload["targets"]}
    assert [v for t, v in verdicts.items() if "drift found as made" in t] == ["met", "met"]
    assert "## Targets" in reconciliation.render_markdown(payload)
    assert (results.read_text() if results.exists() else None) == before


def test_sync_report_judges_targets_from_the_rows():
    def row(key, store, rate, calls, **extra):
        return {
            "key": key,
            "store": store,
            "available": True,
            "records_per_second": rate,
            "api_calls": calls,
            "peak_rss_mb": 300.0,
            **extra,
        }

    per_entity = {e: {"api_calls": 2} for e in ("accounts", "persons", "opportunities")}
    rows = [
        row("floor", "-", 1000, 10),
        row("rest_sqlite", "sqlite", 600, 13),
        row("bulk_sqlite", "sqlite", 1500, 5, peak_rss_mb=650.0),
        row("default_sqlite", "sqlite", 900, 9),
        {"key": "dlt_full_sqlite", "store": "sqlite", "available": False, "note": "no dlt"},
        row("incremental_sqlite", "sqlite", 100, 6, seconds=2.5, detail={"per_entity": per_entity}),
        row(
            "large_incremental_sqlite",
            "sqlite",
            80,
            6,
            seconds=12.5,
            org_records=1100,
            detail={"per_entity": per_entity},
        ),
        row("memory_rest_100", "sqlite", 500, 2, org_contacts=100),
        row("memory_rest_1000", "sqlite", 500, 2, org_contacts=1000, peak_rss_mb=390.0),
        row("memory_bulk_100", "sqlite", 900, 2, org_contacts=100),
        row("memory_bulk_1000", "sqlite", 900, 2, org_contacts=1000, peak_rss_mb=330.0),
    ]
    targets = sync_report.judge(rows)
    verdicts = [t["verdict"] for t in targets]
    # REST 0.6x floor; Bulk 2.5x REST; no dlt (x3: REST, Bulk, default); incremental; the large
    # org's incremental (12.5 s); peak 650 MB; growth REST +30%, Bulk +10%
    assert "(sqlite on the 1,100-record org)" in targets[6]["target"]
    assert verdicts == [
        "met",
        "missed",
        "not available",
        "not available",
        "not available",
        "met",
        "missed",
        "missed",
        "missed",
        "met",
    ]
    sync_report.add_ratios(rows)
    assert (rows[1]["vs_floor"], rows[2]["vs_floor"], rows[2]["vs_dlt"]) == (0.6, 1.5, None)
    assert rows[3]["vs_floor"] == 0.9


def test_rows_of_several_rounds_keep_their_fastest_run():
    def row(key: str, seconds: float, available: bool = True) -> dict:
        return {"key": key, "available": available, "seconds": seconds, "detail": {"n": seconds}}

    rows = [row("floor", 2.0), row("rest_sqlite", 5.0), row("dlt", 0, False)]
    rows += [row("floor", 1.5), row("rest_sqlite", 6.0), row("dlt", 0, False)]
    kept = sync_report.fastest_runs(rows)
    assert [(r["key"], r["seconds"]) for r in kept] == [
        ("floor", 1.5),
        ("rest_sqlite", 5.0),
        ("dlt", 0),
        ("dlt", 0),
    ]
    assert kept[0]["detail"] == {"n": 1.5, "rounds_seconds": [2.0, 1.5]}
    assert "fastest of 2 runs (5.00 / 6.00 s)" in sync_report._note(
        {**kept[1], "key": "floor", "detail": {**kept[1]["detail"], "per_object": {}}}
    )
    assert sync_report.fastest_runs(rows[:3]) == rows[:3]  # one round: unchanged


DETAIL = [
    "store_upsert", "emulator_serving", "quality_gates", "small_pages", "writeback",
    "reconciliation", "idle_tenants", "activities", "latency",
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ["sync_comparison"]),
        (["--quick"], ["sync_comparison"]),
        (["--all"], [*DETAIL, "sync_comparison"]),
        (["--quick", "--all"], [*DETAIL, "sync_comparison"]),
    ],
)
def test_run_measures_the_comparison_by_default_and_the_detail_benchmarks_with_all(
    monkeypatch, argv, expected
):
    calls: list[tuple[str, list[str]]] = []
    for table in (run.DETAIL, run.COMPARISON):
        for name in table:
            monkeypatch.setitem(table, name, lambda args, name=name: calls.append((name, args)))
    run.main(argv)
    quick = "--quick" in argv
    assert calls == [(name, run.QUICK_ARGS[name] if quick else []) for name in expected]


def test_idle_tenants_quick_mode_shows_the_sensor_leaving_idle_tenants_alone():
    from benchmarks import idle_tenants

    payload = idle_tenants.main(QUICK_ARGS["idle_tenants"])
    assert payload["tenants"] == 3
    assert payload["idle_tick"]["runs"] == 0
    assert payload["idle_tick"]["api_calls"] == len(SYNC_ORDER) * 3  # one check per entity each
    assert payload["changed_tick"]["runs"] == 3
    assert payload["changed_tick"]["api_calls"] == 3 * 2  # accounts, then the changed contacts


def test_activities_quick_mode_syncs_scores_and_records_nothing():
    from benchmarks import activities

    results = RESULTS_DIR / "activities.json"
    before = results.read_text() if results.exists() else None
    payload = activities.main(QUICK_ARGS["activities"])
    full, incremental, scoring = payload["rows"]
    read = {n: full["detail"]["per_entity"][n]["rows_read"] for n in ("tasks", "events")}
    assert read["tasks"] >= payload["org"]["Task"] and read["events"] >= payload["org"]["Event"]
    assert full["detail"]["per_entity"]["leads"]["rows_read"] >= payload["org"]["Lead"]
    assert incremental["detail"]["per_entity"]["tasks"]["rows_loaded"] >= 100
    assert 0 < scoring["records"] <= sum(read.values()) + 100
    assert scoring["detail"]["scores_written"] > 0
    assert (results.read_text() if results.exists() else None) == before


def test_latency_quick_mode_measures_every_row_under_the_profile_and_records_nothing():
    from benchmarks import latency

    results = RESULTS_DIR / "latency.json"
    before = results.read_text() if results.exists() else None
    payload = latency.main(QUICK_ARGS["latency"])
    assert payload["profile"] == latency.QUICK_PROFILE.to_json()
    rows = {r["key"]: r for r in payload["rows"]}
    paths = ("default", "rest", "bulk")
    connector = {f"{p}_{s}" for p in paths for s in ("sqlite", "postgresql")}
    assert set(rows) == {"floor", "dlt_sqlite", "airbyte", *connector}
    measured = [r for r in rows.values() if r["available"]]
    assert all(r["vs_floor"] > 0 and r["api_calls"] > 0 and r["peak_rss_mb"] > 0 for r in measured)
    assert rows["floor"]["vs_floor"] == 1.0
    org_size = sum(payload["org"].values())
    assert all(rows[key]["records"] >= org_size for key in connector)
    assert rows["dlt_sqlite"]["available"] or "not installed" in rows["dlt_sqlite"]["note"]
    airbyte = rows["airbyte"]  # unavailable unless GTM_AIRBYTE_PYTHON names its Python
    assert airbyte["available"] or "GTM_AIRBYTE_PYTHON" in airbyte["note"]
    assert (results.read_text() if results.exists() else None) == before


def test_idle_sync_command_times_the_command_of_this_checkout():
    from benchmarks import idle_sync_command

    payload = idle_sync_command.main(["--runs", "1", "--no-write"])
    [seconds] = payload["results"]["after"]["runs"]
    assert seconds > 0 and "before" not in payload["results"]
