"""`dagster asset materialize -m gtm_pipeline.definitions --partition T` works as is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from gtm_pipeline.cli.instance import on_instance
from gtm_pipeline.defs.partitions import salesforce_tenants
from gtm_pipeline.store.tables import entity_rows
from gtm_pipeline.sync.entities import SYNC_ORDER
from gtm_pipeline_tests.support.defs import TENANT, program_environment

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_dagster_cli_materializes_a_tenant_partition(
    resources, emulator, encryption_key, database_url, tmp_path
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance, on_instance(instance):
        instance.add_dynamic_partitions(salesforce_tenants.name, [TENANT])
    env = {**os.environ, **program_environment(emulator, encryption_key, database_url, home)}
    # One asset: each one materialized through the CLI runs in a process of its own (~15 s on
    # a small machine); the whole chain is the daemon test's (test_daemon_chain.py).
    command = [sys.executable, "-m", "dagster", "asset", "materialize",
               "-m", "gtm_pipeline.definitions", "--select", "key:salesforce/accounts",
               "--partition", TENANT]  # fmt: skip
    result = subprocess.run(  # noqa: S603
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        counts = {
            entity.name: conn.execute(
                sa.select(sa.func.count()).where(entity_rows(entity.name).of_tenant(TENANT))
            ).scalar_one()
            for entity in SYNC_ORDER
        }
    engine.dispose()
    assert counts.pop("accounts") > 0
    assert set(counts.values()) == {0}, "only the selected asset ran"
