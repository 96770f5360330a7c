"""The quality asset checks: counts, severity against the threshold, and a failures table that a
record's own values cannot break, checked on results built directly and through `materialize()`."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from gtm_pipeline.cli.instance import on_instance
from gtm_pipeline.cli.quality import quality
from gtm_pipeline.config import ConfigError, quality_error_rate
from gtm_pipeline.defs.assets import asset_key, sync_assets
from gtm_pipeline.defs.checks import quality_check_results
from gtm_pipeline.defs.partitions import salesforce_tenants
from gtm_pipeline.store.quarantine import failures_for
from gtm_pipeline.store.tables import entity_rows
from gtm_pipeline.sync.entities import LEADS, PERSONS, SYNC_ORDER
from gtm_pipeline.sync.quality import (
    DEDUPLICATION,
    REQUIRED,
    STAGES,
    TYPE_COERCION,
    QualityStats,
    Standing,
    failures_markdown,
    markdown_cell,
)
from gtm_pipeline_tests.support.defs import TENANT, with_error_rate

KEY = asset_key(PERSONS)


def stats(input_rows: int, **by_stage: int) -> QualityStats:
    failed_by_stage = dict.fromkeys(STAGES, 0) | by_stage
    failed = failed_by_stage[REQUIRED] + failed_by_stage[TYPE_COERCION]
    dups = failed_by_stage[DEDUPLICATION]
    return QualityStats(input_rows, input_rows - failed - dups, failed, dups, failed_by_stage)


def by_name(results) -> dict[str, dg.AssetCheckResult]:
    return {r.check_name: r for r in results}


def test_severity_is_warn_up_to_the_threshold_and_error_above():
    results = by_name(
        quality_check_results(KEY, stats(100, required_fields=10, type_coercion=11), threshold=0.1)
    )
    assert results[REQUIRED].severity == dg.AssetCheckSeverity.WARN
    assert not results[REQUIRED].passed
    assert results[TYPE_COERCION].severity == dg.AssetCheckSeverity.ERROR
    assert results[DEDUPLICATION].passed
    meta = {k: v.value for k, v in results[TYPE_COERCION].metadata.items()}
    assert meta["rows_checked"] == 100 and meta["rows_rejected"] == 11
    assert meta["rejected_rate"] == 0.11 and meta["error_threshold"] == 0.1


def test_with_a_standing_the_tenants_whole_table_is_judged_not_the_run():
    run = stats(8, required_fields=1, type_coercion=1)  # 12.5% of a small incremental run
    clean_tenant = Standing({REQUIRED: 20, TYPE_COERCION: 120}, records=1000)  # 2% and 12%
    results = by_name(quality_check_results(KEY, run, standing=clean_tenant, threshold=0.05))
    assert results[REQUIRED].severity == dg.AssetCheckSeverity.WARN
    assert results[TYPE_COERCION].severity == dg.AssetCheckSeverity.ERROR
    meta = {k: v.value for k, v in results[REQUIRED].metadata.items()}
    assert meta["rejected_rate"] == 0.125 and meta["tenant_rejected_rate"] == 0.02
    assert meta["tenant_records"] == 1000 and meta["tenant_quarantined"] == 20
    assert results[DEDUPLICATION].passed  # nothing rejected, nothing in its quarantine


def test_an_error_stays_an_error_while_the_quarantine_holds_it():
    dirty_tenant = Standing({REQUIRED: 400}, records=1000)  # a full sync quarantined 40%
    quiet_run = stats(3)  # the next incremental run rejects nothing
    results = by_name(quality_check_results(KEY, quiet_run, standing=dirty_tenant, threshold=0.05))
    assert not results[REQUIRED].passed
    assert results[REQUIRED].severity == dg.AssetCheckSeverity.ERROR


def test_a_run_rejecting_most_of_many_rows_is_an_error_before_the_table_shows_it():
    clean_tenant = Standing({TYPE_COERCION: 200}, records=100_000)  # 0.2% of the table
    broken_mapping = stats(200, type_coercion=200)  # every row of this run
    results = by_name(
        quality_check_results(KEY, broken_mapping, standing=clean_tenant, threshold=0.05)
    )
    assert results[TYPE_COERCION].severity == dg.AssetCheckSeverity.ERROR


def test_without_a_standing_the_run_rate_is_judged():
    results = by_name(quality_check_results(KEY, stats(8, required_fields=1), threshold=0.05))
    assert results[REQUIRED].severity == dg.AssetCheckSeverity.ERROR
    assert "tenant_rejected_rate" not in results[REQUIRED].metadata


@pytest.mark.parametrize("raw", ["-0.1", "1.5", "lots", "nan"])
def test_a_bad_threshold_names_the_variable(raw):
    with pytest.raises(ConfigError, match="GTM_QUALITY_ERROR_RATE"):
        quality_error_rate({"GTM_QUALITY_ERROR_RATE": raw})


def test_each_check_tables_only_its_own_failures_up_to_the_limit():
    failures = [
        {"external_id": f"003R{i}", "stage": REQUIRED, "field": "email",
         "reason": "missing required field(s): email", "raw": {"email": None}}
        for i in range(30)
    ] + [
        {"external_id": "003T", "stage": TYPE_COERCION, "field": "title",
         "reason": "title: text longer than 255 characters (300)", "raw": {"title": "x" * 300}}
    ]  # fmt: skip
    results = by_name(quality_check_results(KEY, stats(100, required_fields=30), failures, limit=5))
    required_table = results[REQUIRED].metadata["first_failures"].value
    assert required_table.count("\n| 003R") == 5 and "003T" not in required_table
    assert results[REQUIRED].metadata["failures_shown"].value == 5
    assert "003T" in results[TYPE_COERCION].metadata["first_failures"].value
    assert results[DEDUPLICATION].metadata["first_failures"].value == "No failures."


def test_record_values_cannot_break_the_markdown_table():
    hostile = "<script>alert(1)</script> | x | `code` [link](http://e.vil)\nnext line"
    table = failures_markdown(
        [{"external_id": "003|A", "field": "title", "reason": "bad", "raw": {"title": hostile}}]
    )
    header, rule, row = table.split("\n")
    assert row.count("|") - row.count("\\|") == header.count("|") == 5
    assert "<script>" not in table and "&lt;script&gt;" in table
    assert "\\`code\\`" in table and "\\[link\\]" in table
    assert markdown_cell("a" * 200, limit=10) == "a" * 9 + "…"
    assert markdown_cell(None) == "" and markdown_cell(float("nan")) == ""


# -- through Dagster --------------------------------------------------------------------------


@pytest.fixture()
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(salesforce_tenants.name, [TENANT])
        yield instance


def materialize(instance, resources) -> dg.ExecuteInProcessResult:
    with on_instance(instance):
        return dg.materialize(
            sync_assets(),
            instance=instance,
            partition_key=TENANT,
            resources=resources,
            tags={"gtm/tenant": TENANT},
        )


def email_twins(engine, entity) -> set[str]:
    """The entity's rows the store marked as another row's email twin (not deleted)."""
    rows = entity_rows(entity.name)
    table = rows.table
    if "duplicate_of" not in table.c:
        return set()
    with engine.connect() as conn:
        query = sa.select(table.c.external_id).where(
            rows.of_tenant(TENANT),
            table.c.is_deleted.is_(False),
            table.c.duplicate_of.is_not(None),
        )
        return set(conn.execute(query).scalars())


def test_checks_report_the_runs_quarantined_records(instance, resources, engine):
    """required_fields and type_coercion report the run's quarantine; deduplication quarantines
    nothing and reports the tenant's email twins, which the store marks (`duplicate_of`)."""
    result = materialize(instance, with_error_rate(resources, 0.001))
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    for entity in SYNC_ORDER:
        key = asset_key(entity)
        with engine.connect() as conn:
            quarantined = failures_for(conn, TENANT, entity.name)
        assert quarantined and all(f["run_id"] == result.run_id for f in quarantined)
        assert not [f for f in quarantined if f["stage"] == DEDUPLICATION]
        twins = email_twins(engine, entity)
        assert bool(twins) == (entity in (PERSONS, LEADS)), "the org's shared emails made no twins"
        checks = {e.check_name: e for e in evaluations if e.asset_key == key}
        assert set(checks) == set(STAGES)
        for stage, evaluation in checks.items():
            if stage == DEDUPLICATION:
                own, rejected = twins, 0  # marked in the store, not rejected by the run
            else:
                own = {f["external_id"] for f in quarantined if f["stage"] == stage}
                rejected = len(own)
            meta = {k: v.value for k, v in evaluation.metadata.items()}
            assert meta["rows_rejected"] == rejected
            assert evaluation.passed == (not own)
            table = meta["first_failures"]
            if not own:
                assert table == "No failures."
                continue
            assert meta["tenant_quarantined"] == len(own)
            assert meta["tenant_rejected_rate"] == round(len(own) / meta["tenant_records"], 6)
            assert evaluation.severity == (
                dg.AssetCheckSeverity.ERROR
                if meta["tenant_rejected_rate"] > 0.001
                else dg.AssetCheckSeverity.WARN
            )
            shown = [line.split(" | ")[0].removeprefix("| ") for line in table.split("\n")[2:]]
            assert shown and set(shown) <= own
            assert meta["failures_shown"] == len(shown) == min(len(own), 20)


def test_quality_command_prints_the_same_report_from_the_store(
    instance, resources, engine, database_url, monkeypatch
):
    result = materialize(instance, resources)
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    out = runner.invoke(quality, ["--tenant", TENANT, "--limit", "3"])
    assert out.exit_code == 0, out.output
    evaluations = result.get_asset_check_evaluations()
    sections = dict((part.split("\n", 1)[0], part) for part in out.output.strip().split("\n\n"))
    assert list(sections) == [f"== {e.name}" for e in SYNC_ORDER]
    for entity in SYNC_ORDER:
        text = sections[f"== {entity.name}"]
        for evaluation in (e for e in evaluations if e.asset_key == asset_key(entity)):
            rejected = evaluation.metadata["rows_rejected"].value
            assert f"{evaluation.check_name:<16} {rejected:>8} rejected" in text
        with engine.connect() as conn:
            first = failures_for(conn, TENANT, entity.name)[:3]
        assert all(f["external_id"] in text for f in first)
    only = runner.invoke(quality, ["--tenant", TENANT, "--entity", "persons", "--limit", "0"])
    assert only.exit_code == 0 and only.output.startswith("== persons\n")
    assert "external_id" not in only.output


def test_quality_command_refuses_a_tenant_that_never_synced(database_url, engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    out = CliRunner().invoke(quality, ["--tenant", "nobody"])
    assert out.exit_code != 0 and "no sync recorded for tenant 'nobody'" in out.output


def test_one_bad_record_in_a_small_incremental_run_warns_instead_of_blocking(
    instance, resources, emulator
):
    assert resources["warehouse"].quality_error_rate == 0.05  # the default
    assert materialize(instance, resources).success
    contacts = [r["Id"] for r in emulator.control.truth("Contact") if r.get("Email")][:8]
    ops = [
        {"op": "update", "object": "Contact", "id": i, "fields": {"Title": "Changed"}}
        for i in contacts[1:]
    ]
    unnamed = {"Email": None, "FirstName": None, "LastName": None}  # fails required fields
    ops.append({"op": "update", "object": "Contact", "id": contacts[0], "fields": unnamed})
    emulator.control.mutate(ops)
    result = materialize(instance, resources)
    evaluation = next(
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == KEY and e.check_name == REQUIRED
    )
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert meta["rows_rejected"] >= 1 and meta["rejected_rate"] > 0.05  # the run's own rate
    assert meta["tenant_rejected_rate"] <= 0.05
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
