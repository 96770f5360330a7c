"""The Dagster definitions tests' tenant, how it is connected (tokens from the real OAuth flow,
encrypted in the store), and the environment a `gtm-pipeline` or `dagster` process reads."""

from __future__ import annotations

from datetime import UTC, datetime

from gtm_pipeline.connect.vault import StoredTokens, TokenVault
from gtm_pipeline.defs.resources import WarehouseResource
from gtm_pipeline.emulator.testing import EmulatorHandle, obtain_tokens, salesforce_environment
from gtm_pipeline.salesforce.crypto import TokenCipher
from gtm_pipeline.store.connections import upsert_connector

TENANT = "acme"


def connect_tenant(engine, emulator, encryption_key: str, tenant_id: str = TENANT) -> None:
    tokens = obtain_tokens(emulator.info)
    issued = datetime.fromtimestamp(int(tokens["issued_at"]) / 1000, tz=UTC)
    with engine.begin() as conn:
        upsert_connector(
            conn,
            tenant_id=tenant_id,
            connector_id=f"sf-{tenant_id}",
            instance_url=tokens["instance_url"],
            org_id=emulator.org.org_id,
            status="connected",
        )
        TokenVault(TokenCipher(encryption_key)).save(
            conn,
            StoredTokens(
                tenant_id=tenant_id,
                connector_id=f"sf-{tenant_id}",
                instance_url=tokens["instance_url"],
                access_token=tokens["access_token"],
                refresh_token=tokens["refresh_token"],
                issued_at=issued,
            ),
        )


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
