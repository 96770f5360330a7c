"""The Dagster code location loads, in-process and through Dagster's own CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from gtm_pipeline.cli.instance import on_instance
from gtm_pipeline.config import DEFAULT_BULK_THRESHOLD, ConfigError, Settings
from gtm_pipeline.definitions import defs
from gtm_pipeline.defs.partitions import salesforce_tenants
from gtm_pipeline.defs.resources import WarehouseResource, shared_resources
from gtm_pipeline.store import current_revision, head_revision

REPO = Path(__file__).resolve().parents[1]


def test_definitions_validate_in_process():
    with dg.instance_for_test() as instance, on_instance(instance):
        dg.Definitions.validate_loadable(defs)
    assert "warehouse" in defs.resources


def test_dagster_cli_loads_the_code_location(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "GTM_HOME": str(tmp_path / "gtm")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "definitions",
            "validate",
            "-m",
            "gtm_pipeline.definitions",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _dg(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """Dagster's project CLI, as a user runs it in the repository (the `[tool.dg]` project)."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "GTM_HOME": str(tmp_path / "gtm")}
    env["VIRTUAL_ENV"] = str(Path(sys.executable).parents[1])
    return subprocess.run(  # noqa: S603 - the dg beside this interpreter, fixed arguments
        [str(Path(sys.executable).with_name("dg")), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_dg_checks_and_lists_the_project(tmp_path):
    checked = _dg(tmp_path, "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = _dg(tmp_path, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assets = {a["asset_key"] for a in found["assets"]}
    assert {"salesforce/accounts", "salesforce/contacts", "salesforce/score_writeback"} <= assets
    assert {j["name"] for j in found["jobs"]} >= {"salesforce_sync", "salesforce_scores_writeback"}
    assert {s["name"] for s in found["sensors"]} == {
        "tenant_sync_sensor", "score_after_sync", "reconcile_after_full_sync",
    }  # fmt: skip


def test_tenant_partitions_are_dynamic_and_named():
    assert isinstance(salesforce_tenants, dg.DynamicPartitionsDefinition)
    assert salesforce_tenants.name == "salesforce_tenants"


def test_warehouse_resource_migrates_the_store_it_opens(database_url):
    resource = WarehouseResource(database_url=database_url)
    engine = resource.engine()
    assert resource.engine() is engine
    assert current_revision(engine) == head_revision()
    assert "persons" in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_the_resources_come_from_the_settings(gtm_home, tmp_path):
    resources = shared_resources(Settings({"GTM_HOME": gtm_home}))
    assert resources["warehouse"].database_url == f"sqlite:///{Path(gtm_home) / 'warehouse.db'}"
    assert resources["salesforce"].bulk_threshold == DEFAULT_BULK_THRESHOLD
    tuned = {"GTM_BULK_THRESHOLD": "10", "GTM_QUALITY_ERROR_RATE": "0.2"}
    resources = shared_resources(Settings({**tuned, "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}))
    assert resources["warehouse"].database_url == f"sqlite:///{tmp_path}/x.db"
    assert resources["warehouse"].quality_error_rate == 0.2
    assert resources["salesforce"].bulk_threshold == 10
    with pytest.raises(ConfigError, match="GTM_BULK_THRESHOLD"):
        shared_resources(Settings({"GTM_BULK_THRESHOLD": "many"}))


def test_parallel_reads_come_from_the_settings_within_salesforces_cursor_limit(gtm_home):
    assert shared_resources(Settings({"GTM_HOME": gtm_home}))["salesforce"].parallel_reads == 8
    tuned = Settings({"GTM_HOME": gtm_home, "GTM_PARALLEL_READS": "3"})
    assert shared_resources(tuned)["salesforce"].parallel_reads == 3
    for bad in ("0", "11", "four"):
        with pytest.raises(
            ConfigError, match="GTM_PARALLEL_READS must be a whole number from 1 to 10"
        ):
            shared_resources(Settings({"GTM_HOME": gtm_home, "GTM_PARALLEL_READS": bad}))
