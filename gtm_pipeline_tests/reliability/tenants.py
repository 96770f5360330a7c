"""A tenant connected the way production connects one, and its self-refreshing client."""

from __future__ import annotations

import sqlalchemy as sa

from gtm_pipeline.config import Settings
from gtm_pipeline.connect.tokens import TenantClients
from gtm_pipeline.connect.vault import TokenVault
from gtm_pipeline.emulator.testing import EmulatorHandle
from gtm_pipeline.salesforce.client import ClientConfig, SalesforceClient
from gtm_pipeline.salesforce.crypto import TokenCipher
from gtm_pipeline.salesforce.oauth import OAuthClient
from gtm_pipeline_tests.support.connect import settings_for
from gtm_pipeline_tests.support.defs import connect_tenant

__all__ = ["connect_tenant", "refreshing_client", "revoke_refresh_token", "settings_for"]

# Retries as in production, only with pauses short enough for a test.
FAST_RETRIES = {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}


def refreshing_client(
    engine: sa.Engine, emulator: EmulatorHandle, tenant_id: str, key: str, **config: object
) -> SalesforceClient:
    """The client a sync asset builds: tokens from the vault, refreshed through the store."""
    settings = settings_for(emulator)
    return TenantClients.from_settings(
        engine,
        Settings({"CONNECTOR_ENCRYPTION_KEY": key, "SALESFORCE_SESSION_LIFETIME_SECONDS": "7200"}),
        salesforce=settings,
        config=ClientConfig(
            api_version=settings.api_version,
            ca_bundle=settings.ca_bundle,
            **{**FAST_RETRIES, **config},  # type: ignore[arg-type]
        ),
    ).for_tenant(tenant_id)


def revoke_refresh_token(engine: sa.Engine, emulator: EmulatorHandle, tenant_id: str, key: str):
    """An admin revokes the app's access in Salesforce: the refresh token and its sessions die."""
    with engine.connect() as conn:
        stored = TokenVault(TokenCipher(key)).load(conn, tenant_id)
    assert stored is not None and stored.refresh_token
    OAuthClient(settings_for(emulator)).revoke(stored.refresh_token)
