"""The Dagster definitions tests' tenant, how it is connected (tokens from the real OAuth flow,
encrypted in the store), and the environment a `gtm-pipeline` or `dagster` process reads."""

from __future__ import annotations

from gtm_pipeline.defs.resources import WarehouseResource
from gtm_pipeline.emulator.testing import (
    EmulatorHandle,
    salesforce_environment,
    store_connected_tenant,
)

TENANT = "acme"


def connect_tenant(engine, emulator, encryption_key: str, tenant_id: str = TENANT) -> None:
    store_connected_tenant(engine, emulator.info, encryption_key, tenant_id)


def program_environment(
    emulator: EmulatorHandle, encryption_key: str, database_url: str, dagster_home: object
) -> dict[str, str]:
    """The settings a `gtm-pipeline` or `dagster` process reads, pointed at the emulator, the
    store and a Dagster home."""
    return {
        "DAGSTER_HOME": str(dagster_home),
        "DATABASE_URL": database_url,
        **salesforce_environment(emulator.info),
        "CONNECTOR_ENCRYPTION_KEY": encryption_key,
    }


def with_error_rate(resources: dict, rate: float) -> dict:
    """`resources` with the warehouse's quality error rate (GTM_QUALITY_ERROR_RATE) at `rate`."""
    warehouse = WarehouseResource(
        database_url=resources["warehouse"].database_url, quality_error_rate=rate
    )
    return {**resources, "warehouse": warehouse}


def after_success(sensor, instance, result):
    """What the run-status `sensor` returns for the successful run `result`, with the context
    the daemon builds for it (the partition from the run's tag)."""
    import dagster as dg

    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_success_event(),
        partition_key=result.dagster_run.tags.get("dagster/partition"),
    )
    return sensor(context)
