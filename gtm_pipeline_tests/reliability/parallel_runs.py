"""Runs of the product's `salesforce_sync` job (its executor: in the run's process) started from
worker processes, one run per tenant partition, so several tenants sync at the same time.

Module-level functions only: the process pool pickles the worker function by name, and Dagster
reconstructs the job from its module.
"""

from __future__ import annotations

import dagster as dg

from gtm_pipeline.defs.partitions import TENANT_TAG


def product_sync_job() -> dg.JobDefinition:
    """The job the sensor starts, resolved from the code location exactly as deployed."""
    from gtm_pipeline.definitions import defs

    return defs.resolve_job_def("salesforce_sync")


def run_tenant(instance_ref: dg._core.instance.InstanceRef, tenant_id: str) -> tuple[str, bool]:
    """One sync run for one tenant, as the daemon launches it; (tenant, success)."""
    with dg.DagsterInstance.from_ref(instance_ref) as instance:
        result = dg.execute_job(
            dg.reconstructable(product_sync_job),
            instance=instance,
            tags={"dagster/partition": tenant_id, TENANT_TAG: tenant_id},
        )
        return tenant_id, result.success
