"""A connected tenant (tokens from the real OAuth flow, encrypted in the store) and resources.

`TENANT`, `connect_tenant` and `program_environment` live in gtm_pipeline_tests/support/defs.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from gtm_pipeline.defs.resources import SalesforceResource, WarehouseResource
from gtm_pipeline.emulator.testing import EmulatorHandle, running_emulator
from gtm_pipeline.store.connections import set_connector_status
from gtm_pipeline_tests.support.defs import connect_tenant, program_environment

COUNTS = {"Account": 80, "Contact": 600, "Opportunity": 150, "Lead": 200, "Task": 240, "Event": 80}


@pytest.fixture()
def emulator(tmp_path) -> Iterator[EmulatorHandle]:
    with running_emulator(tmp_path / "emulator", counts=COUNTS, seed=5) as handle:
        yield handle


@pytest.fixture()
def encryption_key() -> str:
    return secrets.token_hex(32)


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
            allow_any_instance=True,  # the emulator serves on 127.0.0.1
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


@pytest.fixture()
def cli_env(gtm_home, monkeypatch, resources, emulator, encryption_key, database_url, tmp_path):
    """The environment `gtm-pipeline` reads, pointed at the emulator, the store and a fresh
    DAGSTER_HOME (the tenant connected); returns that home."""
    home = tmp_path / "dagster_home"
    for name, value in program_environment(emulator, encryption_key, database_url, home).items():
        monkeypatch.setenv(name, value)
    return home
