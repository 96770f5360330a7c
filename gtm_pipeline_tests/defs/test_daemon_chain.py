"""The whole chain through a real `dagster-daemon`: with nobody clicking, a tenant changed in
Salesforce gets its sync, then its scores and writeback; a changed tenant whose sync fails an ERROR
quality check gets the writeback run, which refuses and writes nothing; an idle tenant gets no
run at all.

Two emulated orgs: `acme` and `initech` on a clean one, `globex` on one with dirty records, and
GTM_QUALITY_ERROR_RATE at 0, so globex's gates end in ERROR and acme's pass. All three are synced
once before the daemon starts; then one Contact changes in each org, and initech is synced again
in process, so only acme and globex have something new.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import pytest

from gtm_pipeline.cli.instance import dagster_home, program_resources
from gtm_pipeline.cli.sync import run_sync
from gtm_pipeline.config import Settings
from gtm_pipeline.defs.partitions import TENANT_TAG
from gtm_pipeline.emulator.testing import (
    EmulatorHandle,
    running_emulator,
    store_connected_tenant,
)
from gtm_pipeline_tests.support.defs import program_environment

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

COUNTS = {"Account": 20, "Contact": 120, "Opportunity": 30}
SYNC, WRITEBACK = "salesforce_sync", "salesforce_scores_writeback"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
WAIT_SECONDS = 300


def change_a_contact(emulator: EmulatorHandle) -> None:
    contact = next(r for r in emulator.control.truth("Contact") if not r["IsDeleted"])
    emulator.control.mutate(
        [{"op": "update", "object": "Contact", "id": contact["Id"], "fields": {"Title": "COO"}}]
    )


def composite_calls(emulator: EmulatorHandle) -> int:
    return emulator.control.stats()["calls"]["composite"]


@pytest.fixture()
def orgs(tmp_path) -> Iterator[dict[str, EmulatorHandle]]:
    with ExitStack() as stack:
        clean = stack.enter_context(
            running_emulator(tmp_path / "clean", counts=COUNTS, seed=11, dirty_ratio=0)
        )
        dirty = stack.enter_context(running_emulator(tmp_path / "dirty", counts=COUNTS, seed=12))
        yield {"acme": clean, "initech": clean, "globex": dirty}


@pytest.fixture()
def daemon_env(orgs, engine, database_url, gtm_home, tmp_path, monkeypatch) -> dict[str, str]:
    """The settings of this process and the daemon's: the clean org's app and login (tokens
    of the dirty org are its own and are not refreshed in this test), both orgs' CAs trusted."""
    key = os.urandom(32).hex()
    for tenant, emulator in orgs.items():
        store_connected_tenant(engine, emulator.info, key, tenant)
    bundle = tmp_path / "both-cas.pem"
    bundle.write_text("".join(Path(e.info["ca_bundle"]).read_text() for e in orgs.values()))
    home = dagster_home(Settings({"DAGSTER_HOME": str(tmp_path / "dagster_home")}))
    env = program_environment(orgs["acme"], key, database_url, home)
    env |= {
        "SALESFORCE_CA_BUNDLE": str(bundle),
        "GTM_QUALITY_ERROR_RATE": "0",
        # The sensor ticks once, when the daemon starts: the writeback's own changes to the
        # clean org would otherwise be the next tick's reason to sync acme and initech again.
        "GTM_SYNC_INTERVAL_SECONDS": "3600",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def runs_by_tenant(instance: dg.DagsterInstance) -> dict[str, list[dg.DagsterRun]]:
    found: dict[str, list[dg.DagsterRun]] = {}
    for record in instance.get_run_records():
        run = record.dagster_run
        found.setdefault(run.tags.get(TENANT_TAG, ""), []).append(run)
    return found


def finished(runs: list[dg.DagsterRun], job: str) -> dg.DagsterRun | None:
    return next((r for r in runs if r.job_name == job and r.status in FINISHED), None)


def wait_for_chain(instance: dg.DagsterInstance, daemon: subprocess.Popen) -> dict:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        assert daemon.poll() is None, "the daemon stopped"
        runs = runs_by_tenant(instance)
        if all(finished(runs.get(t, []), WRITEBACK) for t in ("acme", "globex")):
            return runs
        time.sleep(2)
    raise AssertionError(f"no chained runs within {WAIT_SECONDS} s: {runs_by_tenant(instance)}")


def failure_message(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    return " ".join(r.event_log_entry.dagster_event.step_failure_data.error.message
                    for r in records.records)  # fmt: skip


@pytest.mark.heavy
def test_the_daemon_chains_changed_tenants_and_leaves_the_idle_one_alone(
    orgs, daemon_env, tmp_path
):
    home = daemon_env["DAGSTER_HOME"]
    with dg.DagsterInstance.from_config(home) as instance:
        for tenant in ("acme", "globex", "initech"):
            assert run_sync(tenant, instance=instance, resources=program_resources(),
                            reconcile=False).success  # fmt: skip
        change_a_contact(orgs["acme"])  # acme's and initech's org
        change_a_contact(orgs["globex"])
        assert run_sync("initech", instance=instance, resources=program_resources()).success
        before = len(instance.get_run_records())
        written_before = {t: composite_calls(orgs[t]) for t in ("acme", "globex")}

        log = (tmp_path / "daemon.log").open("w")
        daemon = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [
                Path(sys.executable).with_name("dagster-daemon"),
                "run",
                "-m",
                "gtm_pipeline.definitions",
            ],
            cwd=tmp_path,
            env={**os.environ, **daemon_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            runs = wait_for_chain(instance, daemon)
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=60)
            log.close()

        acme_sync, acme_writeback = (finished(runs["acme"], job) for job in (SYNC, WRITEBACK))
        assert acme_sync.status == dg.DagsterRunStatus.SUCCESS
        assert acme_writeback.status == dg.DagsterRunStatus.SUCCESS
        assert acme_writeback.tags["dagster/run_key"] == f"score-after-{acme_sync.run_id}"
        assert composite_calls(orgs["acme"]) > written_before["acme"]

        globex_sync, refused = (finished(runs["globex"], job) for job in (SYNC, WRITEBACK))
        assert globex_sync.status == dg.DagsterRunStatus.SUCCESS
        assert refused.status == dg.DagsterRunStatus.FAILURE
        assert "Writeback blocked" in failure_message(instance, refused)
        assert composite_calls(orgs["globex"]) == written_before["globex"]

        assert len(runs["initech"]) == 2  # this test's two syncs, nothing from the daemon
        assert len(instance.get_run_records()) - before == 4
