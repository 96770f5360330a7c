"""An access token only goes to a trusted instance URL: stored ones and refreshed ones alike.

The emulator serves on https://127.0.0.1:PORT, outside Salesforce's domains, so with
SALESFORCE_ALLOW_ANY_INSTANCE off it stands for a server a wrong SALESFORCE_LOGIN_URL names.
"""

from __future__ import annotations

import dataclasses

import pytest

from gtm_pipeline.config import Settings
from gtm_pipeline.connect.tokens import TenantClients, TokenProvider
from gtm_pipeline.salesforce.client import Credentials
from gtm_pipeline.salesforce.errors import SessionInvalid
from gtm_pipeline.salesforce.oauth import OAuthClient

TENANT = "acme"


@pytest.fixture()
def untrusting(sf_settings):
    """The emulator's settings with SALESFORCE_ALLOW_ANY_INSTANCE off."""
    return dataclasses.replace(sf_settings, allow_any_instance=False)


@pytest.fixture()
def stored(connect_tenant, emulator, store_engine, vault):
    assert connect_tenant(TENANT).ok
    emulator.control.reset_stats()
    with store_engine.connect() as conn:
        return vault.load(conn, TENANT)


def _secret_free(message: str, stored) -> None:
    assert stored.access_token not in message and stored.refresh_token not in message


def test_stored_tokens_for_an_untrusted_instance_are_never_used(
    stored, untrusting, store_engine, connect_env, emulator
):
    with pytest.raises(SessionInvalid) as caught:
        TenantClients.from_settings(
            store_engine, Settings(connect_env), salesforce=untrusting
        ).for_tenant(TENANT)
    assert "SALESFORCE_ALLOW_ANY_INSTANCE" in str(caught.value)
    _secret_free(str(caught.value), stored)
    assert emulator.control.stats()["total"] == 0  # not one request reached the instance


def test_a_refresh_naming_an_untrusted_instance_is_not_used_or_stored(
    stored, untrusting, store_engine, vault, clock, emulator
):
    provider = TokenProvider(
        store_engine, tenant_id=TENANT, vault=vault, oauth=OAuthClient(untrusting), clock=clock
    )
    with pytest.raises(SessionInvalid) as caught:
        provider.refresh(Credentials(stored.instance_url, stored.access_token))
    assert "SALESFORCE_ALLOW_ANY_INSTANCE" in str(caught.value)
    _secret_free(str(caught.value), stored)
    calls = emulator.control.stats()["calls"]
    assert calls["token"] == 1 and emulator.control.stats()["total"] == 1  # the refresh only
    with store_engine.connect() as conn:
        assert vault.load(conn, TENANT).access_token == stored.access_token
