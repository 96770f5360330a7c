"""Fixtures for the connect services: an emulator, a migrated store, keys, and the wired flow.

A plugin of the whole suite (`pytest_plugins` in gtm_pipeline_tests/conftest.py), so connect/,
web/ and security/ share one definition; folders with an emulator of their own (defs/, emulator/,
reliability/, salesforce/, sync/) override `emulator` and friends in their conftest.py.

- `emulator`: a fresh HTTPS emulator per test (about 0.1 s), on the shared small org, driven by
  the test's `clock` (a ManualClock starting now), so tests can age tokens and states.
- `store_engine`: a migrated store, once on SQLite and once on PostgreSQL (`database_url`).
- `cipher`, `signer`: a random encryption key and state secret per test.
- `connect_env`: the settings' variables (`Settings(connect_env)` for `ConnectFlow.from_settings`
  and `TenantClients.from_settings`), also set in os.environ (so spawned processes inherit it).
- `flow`: a ConnectFlow on all of the above; `connect_tenant(tenant_id)` runs the whole flow
  through the emulator and returns the callback's outcome.
- `_system_ca_bundle_in_env`: not autouse here (it would reach every folder); the conftest.py of
  connect/, web/ and security/ turns it on for their tests.

REQUESTS_CA_BUNDLE stays set (the system store), so the emulator's CA only wins where the code
under test makes it win.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from gtm_pipeline.config import SalesforceSettings
from gtm_pipeline.connect.flow import ConnectFlow, ConnectOutcome
from gtm_pipeline.connect.vault import TokenVault
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.emulator.testing import (
    EmulatorHandle,
    ManualClock,
    running_emulator,
    salesforce_environment,
)
from gtm_pipeline.salesforce.crypto import TokenCipher
from gtm_pipeline.salesforce.oauth import OAuthClient
from gtm_pipeline.salesforce.oauth_state import StateSigner
from gtm_pipeline_tests.support.connect import (
    BINDING,
    CALLBACK_URL,
    CONNECT_COUNTS,
    CONNECTOR_ID,
    SYSTEM_CA_BUNDLE,
    follow_authorize,
    settings_for,
)


@pytest.fixture()
def _system_ca_bundle_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the requests override that bites in production active in every connect test."""
    if not os.environ.get("REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_CA_BUNDLE)


@pytest.fixture(scope="session")
def connect_org() -> Org:
    return Org.generate(seed=21, counts=CONNECT_COUNTS, dirty_ratio=0.05)


@pytest.fixture()
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture()
def start_emulator(
    tmp_path_factory: pytest.TempPathFactory, connect_org: Org, clock: ManualClock
) -> Iterator[Callable[..., EmulatorHandle]]:
    """Start an emulator with given options (default: the small org, the test's clock)."""
    managers: list[Any] = []

    def start(**options: Any) -> EmulatorHandle:
        options.setdefault("org", connect_org)
        options.setdefault("clock", clock)
        manager = running_emulator(tmp_path_factory.mktemp("emulator"), **options)
        handle = manager.__enter__()
        managers.append(manager)
        return handle

    yield start
    for manager in reversed(managers):
        manager.__exit__(None, None, None)


@pytest.fixture()
def emulator(start_emulator: Callable[..., EmulatorHandle]) -> EmulatorHandle:
    """An auto-approving emulator: authorize redirects straight back with a code."""
    return start_emulator()


@pytest.fixture()
def store_engine(engine: sa.Engine) -> sa.Engine:
    """The shared migrated `engine` (SQLite and PostgreSQL), under the name these tests use."""
    return engine


@pytest.fixture()
def encryption_key() -> str:
    return secrets.token_hex(32)


@pytest.fixture()
def cipher(encryption_key: str) -> TokenCipher:
    return TokenCipher(encryption_key)


@pytest.fixture()
def vault(cipher: TokenCipher) -> TokenVault:
    return TokenVault(cipher)


@pytest.fixture()
def state_secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture()
def signer(state_secret: str, clock: ManualClock) -> StateSigner:
    return StateSigner(state_secret, clock=clock)


@pytest.fixture()
def sf_settings(emulator: EmulatorHandle) -> SalesforceSettings:
    return settings_for(emulator)


@pytest.fixture()
def oauth_client(sf_settings: SalesforceSettings) -> OAuthClient:
    return OAuthClient(sf_settings)


@pytest.fixture()
def connect_env(
    emulator: EmulatorHandle,
    database_url: str,
    encryption_key: str,
    state_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The environment of a deployment pointed at the emulator and the test store."""
    env = {
        **salesforce_environment(emulator.info),
        "SALESFORCE_CALLBACK_URL": CALLBACK_URL,
        "CONNECTOR_ENCRYPTION_KEY": encryption_key,
        "CLERK_SECRET_KEY": state_secret,
        "DATABASE_URL": database_url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture()
def flow(
    store_engine: sa.Engine,
    oauth_client: OAuthClient,
    signer: StateSigner,
    vault: TokenVault,
    clock: ManualClock,
) -> ConnectFlow:
    return ConnectFlow(
        store_engine,
        oauth=oauth_client,
        signer=signer,
        vault=vault,
        callback_url=CALLBACK_URL,
        clock=clock,
    )


@pytest.fixture()
def connect_tenant(flow: ConnectFlow, emulator: EmulatorHandle) -> Callable[..., ConnectOutcome]:
    """Run start → authorize → finish for a tenant and return the outcome."""

    def connect(tenant_id: str, connector_id: str = CONNECTOR_ID) -> ConnectOutcome:
        params = follow_authorize(emulator, flow.start(tenant_id, connector_id, BINDING))
        return flow.finish(params, BINDING)

    return connect
