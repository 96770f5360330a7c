"""Runs of the product's `salesforce_sync` job (default executor: multiprocess) started from
worker processes, one run per tenant partition, so several tenants sync at the same time.

Module-level functions only: Dagster re-imports the job in every step process, and the process
pool pickles the worker function by name.
"""

from __future__ import annotations

import dagster as dg

from gtm_pipeline.defs.partitions import TENANT_TAG

# Step processes fork from a server that imported the code location once, instead of each
# importing Dagster and the definitions again (seconds per step on a small machine).
MULTIPROCESS = {
    "max_concurrent": 2,
    "start_method": {"forkserver": {"preload_modules": ["gtm_pipeline.definitions"]}},
}


def product_sync_job() -> dg.JobDefinition:
    """The job the sensor starts, resolved from the code location exactly as deployed."""
    from gtm_pipeline.definitions import defs

    return defs.resolve_job_def("salesforce_sync")


def run_tenant(instance_ref: dg._core.instance.InstanceRef, tenant_id: str) -> tuple[str, bool]:
    """One sync run for one tenant, with the multiprocess executor; (tenant, success)."""
    with dg.DagsterInstance.from_ref(instance_ref) as instance:
        result = dg.execute_job(
            dg.reconstructable(product_sync_job),
            instance=instance,
            tags={"dagster/partition": tenant_id, TENANT_TAG: tenant_id},
            run_config={"execution": {"config": {"multiprocess": MULTIPROCESS}}},
        )
        return tenant_id, result.success
