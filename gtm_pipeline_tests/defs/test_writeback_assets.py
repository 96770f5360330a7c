"""Sync → score → writeback through Dagster's own execution, against the emulator over HTTPS."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from gtm_pipeline.cli.instance import on_instance
from gtm_pipeline.cli.writeback import run_writeback
from gtm_pipeline.defs.assets import sync_assets
from gtm_pipeline.defs.partitions import salesforce_tenants
from gtm_pipeline.defs.scoring_assets import SCORES_KEY, scores_asset
from gtm_pipeline.defs.writeback_assets import (
    FAILURE_RATE_CHECK,
    WRITEBACK_KEY,
    failures_as_table,
)
from gtm_pipeline.store.duplicates import emails_of, refresh_duplicates
from gtm_pipeline.store.scoring import read_scores
from gtm_pipeline.store.tables import persons, quality_failures
from gtm_pipeline.writeback import WritebackResult
from gtm_pipeline_tests.support.defs import TENANT, with_error_rate


@pytest.fixture()
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(salesforce_tenants.name, [TENANT])
        yield instance


def sync(instance, resources) -> None:
    with on_instance(instance):
        result = dg.materialize(
            sync_assets(), instance=instance, partition_key=TENANT, resources=resources
        )
    assert result.success


def composite_calls(emulator) -> int:
    return emulator.control.stats()["calls"]["composite"]


def fit_scores(emulator, sobject: str = "Contact") -> dict[str, float | None]:
    return {row["Id"]: row.get("Fit_Score__c") for row in emulator.control.truth(sobject)}


def test_sync_score_writeback_lands_scores_and_a_rerun_sends_nothing(
    instance, resources, emulator, engine
):
    sync(instance, resources)
    before = composite_calls(emulator)
    progress: list[tuple[str, int, int]] = []
    run = run_writeback(
        TENANT, instance=instance, resources=resources, progress=lambda *p: progress.append(p)
    )
    assert run.success, run.failure
    assert [r["entity_type"] for r in run.results] == ["account", "person", "lead", "opportunity"]
    for result in run.results:
        reports = [p[1:] for p in progress if p[0] == result["entity_type"]]
        sent = result["success"] + result["failed"]
        assert reports[0] == (0, sent) and reports[-1] == (sent, sent)
        assert len(reports) == 1 + result["requests"]  # no locks or splits in a clean run
    written = {r["entity_type"]: r for r in run.results}
    for entity_type, sobject in (("person", "Contact"), ("lead", "Lead")):
        with engine.connect() as conn:
            scores = read_scores(conn, TENANT, entity_type)
        assert written[entity_type]["success"] == written[entity_type]["total"] > 0
        assert written[entity_type]["failed"] == 0
        truth = fit_scores(emulator, sobject)
        landed = 0
        for external_id, fit in zip(scores.external_id, scores.fit_score, strict=True):
            if external_id in truth:
                assert truth[external_id] == pytest.approx(fit)
                landed += 1
        assert landed == written[entity_type]["success"], entity_type
    requests = sum(r["requests"] for r in run.results)
    assert composite_calls(emulator) - before == requests > 0

    again = run_writeback(TENANT, instance=instance, resources=resources)
    assert again.success
    assert composite_calls(emulator) - before == requests
    assert all(r["requests"] == 0 and r["skipped_unchanged"] == r["total"] for r in again.results)
    [evaluation] = [
        e
        for e in instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(WRITEBACK_KEY, FAILURE_RATE_CHECK), limit=1
        )
    ]
    assert evaluation.evaluation.passed


def test_a_blocking_quality_error_stops_the_writeback_before_any_request(
    instance, resources, emulator
):
    resources = with_error_rate(resources, 0)
    sync(instance, resources)  # the emulator's org carries dirty rows: any rejection is an ERROR
    before = composite_calls(emulator)
    run = run_writeback(TENANT, instance=instance, resources=resources)
    assert not run.success
    assert "Writeback blocked" in run.failure and "required_fields" in run.failure
    assert composite_calls(emulator) == before
    assert run.results == []
    retries = [
        e
        for e in instance.all_logs(run.run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"
    ]
    assert not retries


def test_quarantined_deleted_and_email_twin_records_are_not_written(
    instance, resources, emulator, engine
):
    sync(instance, resources)
    with on_instance(instance):
        scored_run = dg.materialize(
            [scores_asset], instance=instance, partition_key=TENANT, resources=resources
        )
    assert scored_run.success
    with engine.connect() as conn:
        scored = read_scores(conn, TENANT, "person")
    quarantined_id, deleted_id, survivor_id, twin_id = scored.external_id.iloc[:4]
    with engine.begin() as conn:
        conn.execute(
            sa.insert(quality_failures).values(
                tenant_id=TENANT, entity="persons", external_id=quarantined_id,
                stage="type_coercion", field="email", reason="test quarantine", raw={},
                first_seen_at=sa.func.now(), last_seen_at=sa.func.now(), run_id=None,
            )
        )  # fmt: skip
        conn.execute(
            sa.update(persons)
            .where(persons.c.tenant_id == TENANT, persons.c.external_id == deleted_id)
            .values(is_deleted=True)
        )
        # Two people now share an email: the larger id becomes the smaller one's twin.
        pair = [survivor_id, twin_id]
        touched = emails_of(conn, TENANT, pair) | {"twin@example.com"}
        conn.execute(
            sa.update(persons)
            .where(persons.c.tenant_id == TENANT, persons.c.external_id.in_(pair))
            .values(email="twin@example.com")
        )
        refresh_duplicates(conn, TENANT, touched)
        marks = dict(
            conn.execute(
                sa.select(persons.c.external_id, persons.c.duplicate_of).where(
                    persons.c.tenant_id == TENANT, persons.c.external_id.in_(pair)
                )
            ).all()
        )
    assert marks == {survivor_id: None, twin_id: survivor_id}
    before = fit_scores(emulator)
    run = run_writeback(TENANT, instance=instance, resources=resources)
    assert run.success, run.failure
    after = fit_scores(emulator)
    assert after[quarantined_id] == before[quarantined_id]
    assert after[deleted_id] == before[deleted_id]
    assert after[twin_id] == before[twin_id]
    with engine.connect() as conn:
        rescored = read_scores(conn, TENANT, "person").set_index("external_id")
    [person] = [r for r in run.results if r["entity_type"] == "person"]
    assert person["total"] == len(rescored) - 3
    others = [i for i in rescored.index if i not in {quarantined_id, deleted_id, twin_id}]
    assert survivor_id in others
    assert all(after[i] == pytest.approx(rescored.fit_score[i]) for i in others)


def test_scores_asset_reports_rows_per_entity_type(instance, resources):
    sync(instance, resources)
    run = run_writeback(TENANT, instance=instance, resources=resources)
    [scored] = [e for e in instance.get_latest_materialization_events([SCORES_KEY]).values() if e]
    meta = {k: v.value for k, v in scored.asset_materialization.metadata.items()}
    totals = {r["entity_type"]: r["total"] for r in run.results}
    for entity_type in ("account", "person", "lead", "opportunity"):
        assert meta[f"rows_scored_{entity_type}"] == totals[entity_type] > 0
    tiers = meta["tier_counts"].records
    assert sum(t.data["rows"] for t in tiers) == meta["dagster/row_count"]


def test_failure_table_keeps_salesforce_messages_as_plain_cells():
    result = WritebackResult(
        "person", total=1, failed=1,
        errors=[{"entity_id": "003|x", "code": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                 "error": "FIELD_CUSTOM_VALIDATION_EXCEPTION: <script>|broken"}],
    )  # fmt: skip
    [record] = failures_as_table([result]).records
    assert record.data["record"] == "003|x"
    assert record.data["error"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION: <script>|broken"
    assert record.data["fields"] == ""


def test_progress_bars_draw_one_bar_per_entity_type_and_end_it(capsys):
    from gtm_pipeline.cli.writeback import ProgressBars

    bars = ProgressBars()
    for settled in (0, 200, 400, 450):
        bars("person", settled, 450)
    bars("account", 0, 300)  # a run that stops part-way: close() ends the bar
    bars.close()
    err = capsys.readouterr().err
    assert err.count("person") == 1 and "450 changed" in err
    assert "account" in err and "300 changed" in err


def test_converted_leads_and_leads_twinned_with_a_contact_are_not_written(
    instance, resources, emulator, engine
):
    sync(instance, resources)
    leads = {r["Id"]: r for r in emulator.control.truth("Lead")}
    converted = [i for i, r in leads.items() if r["IsConverted"] and not r["IsDeleted"]]
    with engine.connect() as conn:
        twins = dict(
            conn.execute(
                sa.select(persons.c.external_id, persons.c.duplicate_of).where(
                    persons.c.tenant_id == TENANT,
                    persons.c.source_object == "Lead",
                    persons.c.duplicate_of.is_not(None),
                )
            ).all()
        )
    assert converted and twins
    assert any(survivor.startswith("003") for survivor in twins.values())  # a Contact survives
    before = fit_scores(emulator, "Lead")
    run = run_writeback(TENANT, instance=instance, resources=resources)
    assert run.success, run.failure
    after = fit_scores(emulator, "Lead")
    with engine.connect() as conn:
        scored = set(read_scores(conn, TENANT, "lead").external_id)
    assert scored and not scored & (set(converted) | set(twins))
    assert all(after[i] == before[i] for i in (*converted, *twins))
    assert any(after[i] is not None for i in scored)
