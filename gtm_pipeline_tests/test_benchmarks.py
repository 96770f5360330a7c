"""The benchmarks still run (quick sizes, nothing recorded). Timings are not checked here."""

from __future__ import annotations

from benchmarks import RESULTS_DIR, emulator_serving, quality_gates, store_upsert


def test_store_upsert_benchmark_runs_on_both_databases():
    before = (RESULTS_DIR / "store_upsert.json").read_text()
    payload = store_upsert.main(["--rows", "1000", "--page-size", "250", "--no-write"])
    passes = {(r["database"], r["pass"]) for r in payload["results"]}
    assert passes == {(db, p) for db in ("sqlite", "postgresql") for p in ("insert", "update")}
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
