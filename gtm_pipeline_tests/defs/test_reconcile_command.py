"""`gtm-pipeline reconcile` and the reconciliation after `gtm-pipeline sync --full`, on the local
instance and the store the environment names (SQLite and PostgreSQL)."""

from __future__ import annotations

import re

import click
import dagster as dg
import pytest
from click.testing import CliRunner

from gtm_pipeline.cli import main
from gtm_pipeline.cli.instance import on_instance
from gtm_pipeline.cli.reconcile import ReconcileRun, echo_outcome
from gtm_pipeline.defs.reconciliation import reconciliation_check_key
from gtm_pipeline.sync.entities import PERSONS
from gtm_pipeline_tests.defs.test_reconciliation_check import clean_live_contacts, persons
from gtm_pipeline_tests.support.defs import TENANT


def test_top_level_help_lists_reconcile():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert re.search(r"^\s+reconcile\s", result.output, re.MULTILINE)


def test_reconcile_help_names_its_options():
    result = CliRunner().invoke(main, ["reconcile", "--help"])
    assert result.exit_code == 0
    assert "--tenant" in result.output and "--dry-run" in result.output


ENTITIES = ("accounts", "contacts", "opportunities")


def rows(output: str, after: str) -> dict[str, list[str]]:
    """The reconciliation table printed after `after`: entity -> cells."""
    found = {}
    for line in output.split(after, 1)[1].splitlines():
        cells = line.split()
        if cells and cells[0] in ENTITIES and cells[0] not in found:
            found[cells[0]] = cells[1:]
    return found


# outcome, missing, stale, ghosts, purged, wrongly_deleted, reread, api_calls
OUTCOME, GHOSTS, PURGED, REREAD = 0, 3, 4, 6


def test_sync_full_then_reconcile_dry_run_then_repair(cli_env, emulator, engine):
    runner = CliRunner()
    synced = runner.invoke(main, ["sync", "--tenant", TENANT, "--full"])
    assert synced.exit_code == 0, synced.output
    after_sync = rows(synced.output, "Reconciliation after the full sync:")
    assert {r[OUTCOME] for r in after_sync.values()} == {"clean"}
    assert f"Reconciliation of {TENANT} succeeded" in synced.output

    (gone,) = clean_live_contacts(emulator, engine, 1)
    emulator.control.mutate(
        [
            {"op": "delete", "object": "Contact", "id": gone},
            {"op": "purge", "object": "Contact", "id": gone},
        ]
    )
    dry = runner.invoke(main, ["reconcile", "--tenant", TENANT, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    table = rows(dry.output, "outcome")
    assert table["contacts"][OUTCOME] == "found"
    assert (table["contacts"][GHOSTS], table["contacts"][PURGED]) == ("1->1", "1->1")
    assert table["contacts"][REREAD] == "0"
    assert table["accounts"][OUTCOME] == table["opportunities"][OUTCOME] == "clean"
    assert f"Dry run: drift found in contacts for {TENANT}; nothing was repaired" in dry.output
    assert not persons(engine)[gone].is_deleted

    repaired = runner.invoke(main, ["reconcile", "--tenant", TENANT])
    assert repaired.exit_code == 0, repaired.output
    table = rows(repaired.output, "outcome")
    assert table["contacts"][OUTCOME] == "repaired"
    assert (table["contacts"][GHOSTS], table["contacts"][PURGED]) == ("1->0", "1->0")
    assert "Dry run" not in repaired.output
    assert f"Reconciliation of {TENANT} succeeded" in repaired.output
    assert persons(engine)[gone].deleted_reason == "purged"

    # Each evaluation was recorded on the local instance, for the tenant partition.
    with dg.DagsterInstance.from_config(str(cli_env)) as instance, on_instance(instance):
        history = instance.event_log_storage.get_asset_check_execution_history(
            reconciliation_check_key(PERSONS), limit=10
        )
        assert [r.partition for r in history] == [TENANT] * 3
        outcomes = [r.evaluation.metadata["outcome"].value for r in history]
        assert outcomes == ["repaired", "found", "clean"]


def test_reconcile_stopped_by_the_budget_exits_1_with_one_line(cli_env, emulator):
    emulator.control.configure(daily_api_limit=0)
    result = CliRunner().invoke(main, ["reconcile", "--tenant", TENANT])
    assert result.exit_code == 1
    [line] = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert line.startswith(f"Error: reconciliation of {TENANT}: ")
    assert "REQUEST_LIMIT_EXCEEDED" in line and "Nothing was repaired" in line


def test_drift_left_after_the_repair_is_a_non_zero_exit_with_the_reason():
    run = ReconcileRun(
        success=True,
        run_id="r1",
        dry_run=False,
        results={
            "accounts": {"outcome": "clean", "stopped": "none"},
            "contacts": {"outcome": "drift_remains", "stopped": "API budget spent"},
        },
        failure=None,
    )
    with pytest.raises(click.ClickException) as caught:
        echo_outcome(TENANT, run)
    assert caught.value.message == (
        f"reconciliation of {TENANT}: drift remains after the repair in contacts (API budget spent)"
    )
