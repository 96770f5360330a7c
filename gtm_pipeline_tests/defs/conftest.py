"""A connected tenant (tokens from the real OAuth flow, encrypted in the store) and resources."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from gtm_pipeline.connect.vault import StoredTokens, TokenVault
from gtm_pipeline.defs.resources import SalesforceResource, WarehouseResource
from gtm_pipeline.emulator.testing import EmulatorHandle, obtain_tokens, running_emulator
from gtm_pipeline.salesforce.crypto import TokenCipher
from gtm_pipeline.store.connections import set_connector_status, upsert_connector

TENANT = "acme"
COUNTS = {"Account": 80, "Contact": 600, "Opportunity": 150}


@pytest.fixture()
def emulator(tmp_path) -> Iterator[EmulatorHandle]:
    with running_emulator(tmp_path / "emulator", counts=COUNTS, seed=5) as handle:
        yield handle


@pytest.fixture()
def encryption_key() -> str:
    return secrets.token_hex(32)


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


@pytest.fixture()
def resources(engine, emulator, encryption_key, database_url) -> dict:
    connect_tenant(engine, emulator, encryption_key)
    info = emulator.info
    return {
        "warehouse": WarehouseResource(database_url=database_url),
        "salesforce": SalesforceResource(
            client_id=info["client_id"],
            client_secret=info["client_secret"],
            encryption_key=encryption_key,
            login_url=info["login_url"],
            api_version=info["api_version"],
            ca_bundle=info["ca_bundle"],
        ),
    }


@pytest.fixture()
def tenants(engine, emulator, encryption_key):
    """acme and globex connected, initech needing a reconnect."""
    for tenant in ("acme", "globex", "initech"):
        connect_tenant(engine, emulator, encryption_key, tenant)
    with engine.begin() as conn:
        set_connector_status(conn, "initech", "reconnect_needed", "refresh token revoked")
    return engine


def program_environment(
    emulator: EmulatorHandle, encryption_key: str, database_url: str, dagster_home: object
) -> dict[str, str]:
    """The settings a `gtm-pipeline` or `dagster` process reads, pointed at the emulator, the
    store and a Dagster home."""
    info = emulator.info
    return {
        "DAGSTER_HOME": str(dagster_home),
        "DATABASE_URL": database_url,
        "SALESFORCE_LOGIN_URL": info["login_url"],
        "SALESFORCE_CA_BUNDLE": info["ca_bundle"],
        "SALESFORCE_API_VERSION": info["api_version"],
        "SALESFORCE_CLIENT_ID": info["client_id"],
        "SALESFORCE_CLIENT_SECRET": info["client_secret"],
        "SALESFORCE_ALLOW_ANY_INSTANCE": "1",
        "CONNECTOR_ENCRYPTION_KEY": encryption_key,
    }
