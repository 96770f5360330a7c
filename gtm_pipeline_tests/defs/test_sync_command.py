"""`gtm-pipeline sync` asks Salesforce first whether anything changed since the tenant's last good
sync (one `LIMIT 1` queryAll per object at most) and starts no Dagster run when nothing did;
`--force` and `--full` always run."""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner

from gtm_pipeline.cli import main
from gtm_pipeline.sync.entities import SYNC_ORDER
from gtm_pipeline_tests.support.defs import TENANT

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

IDLE = f"Nothing changed in Salesforce for {TENANT} since its last sync: no run started"


def sync(*options: str) -> str:
    result = CliRunner().invoke(main, ["sync", "--tenant", TENANT, *options])
    assert result.exit_code == 0, result.output
    return result.output


def runs(dagster_home) -> int:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return len(instance.get_run_records())


def queries(emulator) -> int:
    return emulator.control.stats()["calls"]["queryAll"]


@pytest.fixture()
def synced_once(cli_env, emulator):
    """The tenant after a first sync through the command (no change check: nothing ran yet)."""
    output = sync()
    assert f"Syncing {TENANT}: accounts: the last run did not finish." in output
    assert f"Sync of {TENANT} succeeded" in output
    assert runs(cli_env) == 1


def test_an_idle_tenant_starts_no_run_for_one_query_per_object(cli_env, emulator, synced_once):
    before = queries(emulator)
    output = sync()
    assert IDLE in output
    assert runs(cli_env) == 1
    assert queries(emulator) - before == len(SYNC_ORDER)


def test_a_change_in_salesforce_starts_the_run(cli_env, emulator, synced_once):
    contact = next(r for r in emulator.control.truth("Contact") if not r["IsDeleted"])
    emulator.control.mutate(
        [{"op": "update", "object": "Contact", "id": contact["Id"], "fields": {"Title": "CFO"}}]
    )
    output = sync()
    assert f"Syncing {TENANT}: contacts: changed in Salesforce since" in output
    assert f"Sync of {TENANT} succeeded" in output
    assert runs(cli_env) == 2
    assert IDLE in sync()  # the run moved the cursors past the change


def test_force_runs_an_idle_tenant(cli_env, emulator, synced_once):
    before = queries(emulator)
    output = sync("--force")
    assert IDLE not in output and f"Sync of {TENANT} succeeded" in output
    assert runs(cli_env) == 2
    assert queries(emulator) - before > 0  # the sync's own deletion reads, not a change check


def test_a_failing_check_starts_the_run_that_reports_the_error(cli_env, emulator, synced_once):
    emulator.control.configure(daily_api_limit=1)  # every call refused: the budget is spent
    result = CliRunner().invoke(main, ["sync", "--tenant", TENANT])
    assert result.exit_code == 1
    assert f"Syncing {TENANT}: the change check failed:" in result.output
    assert runs(cli_env) == 2
