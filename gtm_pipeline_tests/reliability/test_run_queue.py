"""One run per tenant at a time: the `gtm/tenant` tag limit of every shipped dagster.yaml.

The sensor skips a tenant with a run in progress, but a run started by hand (UI, CLI, the
schedule) next to the sensor's is only held back by the run queue. This asks Dagster's own queue
daemon which queued runs it would start, on an instance configured from each shipped file.
(`_get_runs_to_dequeue` is the daemon's decision without the launch, which would need a code
server process; the launch itself is Dagster's business.)
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteRepositoryOrigin
from dagster._core.test_utils import create_run_for_test
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from gtm_pipeline.defs.partitions import TENANT_TAG
from gtm_pipeline_tests.support.reliability import announce

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTANCE_FILES = ["dagster.yaml", "deploy/dagster.yaml", "gtm_pipeline/defs/dagster_local.yaml"]
QUEUED = {
    "module": "dagster._core.run_coordinator",
    "class": "QueuedRunCoordinator",
}


ORIGIN = RemoteRepositoryOrigin(
    RegisteredCodeLocationOrigin("gtm_pipeline.definitions"), "__repository__"
).get_job_origin("salesforce_sync")


def run(instance: dg.DagsterInstance, tenant: str, status: dg.DagsterRunStatus) -> str:
    tags = {TENANT_TAG: tenant, "dagster/partition": tenant}
    created = create_run_for_test(
        instance, job_name="salesforce_sync", status=status, tags=tags, remote_job_origin=ORIGIN
    )
    return created.run_id


@pytest.mark.parametrize("path", INSTANCE_FILES)
def test_a_second_run_for_a_busy_tenant_waits_in_the_queue(path):
    settings = yaml.safe_load((REPO_ROOT / path).read_text())
    overrides = {"run_coordinator": QUEUED, "concurrency": settings["concurrency"]}
    with dg.instance_for_test(overrides=overrides) as instance:
        run(instance, "acme", dg.DagsterRunStatus.STARTED)  # the sensor's run
        manual = run(instance, "acme", dg.DagsterRunStatus.QUEUED)  # started by hand
        other = run(instance, "initech", dg.DagsterRunStatus.QUEUED)
        later = run(instance, "initech", dg.DagsterRunStatus.QUEUED)
        daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
        chosen = daemon._get_runs_to_dequeue(  # noqa: SLF001 - see the module docstring
            instance, instance.get_concurrency_config(), fixed_iteration_time=None
        )
        assert [r.run_id for r in chosen] == [other], "one run per tenant, the oldest first"
        assert manual not in {r.run_id for r in chosen} and later not in {r.run_id for r in chosen}
    announce("run_queue", f"{path}: a second run for a busy tenant stays queued")
