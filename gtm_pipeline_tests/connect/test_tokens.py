"""Transparent token refresh: proactive, on INVALID_SESSION_ID, rotated, once across processes."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from typing import Any

import pytest

from gtm_pipeline.config import SalesforceSettings, Settings, session_lifetime
from gtm_pipeline.connect.tokens import RECONNECT_MESSAGE, TenantClients, TokenProvider
from gtm_pipeline.connect.vault import TokenVault
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.salesforce.client import ClientConfig, Credentials
from gtm_pipeline.salesforce.crypto import TokenCipher
from gtm_pipeline.salesforce.errors import SalesforceUnavailable, SessionInvalid
from gtm_pipeline.salesforce.oauth import InvalidGrant, OAuthClient
from gtm_pipeline.store import make_engine
from gtm_pipeline.store.connections import get_connector

TENANT = "acme"
TOKEN_PATH = r"^/services/oauth2/token$"  # noqa: S105 - a URL path, not a password
CONTACTS = 2400


@pytest.fixture(scope="module")
def connect_org() -> Org:
    """Enough contacts for a dozen pages at batch size 200 (overrides the conftest's org)."""
    counts = {"Account": 40, "Contact": CONTACTS, "Opportunity": 10}
    return Org.generate(seed=23, counts=counts, dirty_ratio=0.05)


@pytest.fixture()
def connected(connect_tenant, emulator) -> None:
    assert connect_tenant(TENANT).ok
    emulator.control.reset_stats()


@pytest.fixture()
def provider(store_engine, vault, oauth_client, clock, connected) -> TokenProvider:
    return TokenProvider(
        store_engine, tenant_id=TENANT, vault=vault, oauth=oauth_client, clock=clock
    )


def token_calls(emulator) -> int:
    return emulator.control.stats()["calls"]["token"]


def stored(store_engine, vault):
    with store_engine.connect() as conn:
        return vault.load(conn, TENANT)


def status(store_engine) -> tuple[str, str | None]:
    with store_engine.connect() as conn:
        row = get_connector(conn, TENANT)
    return row.status, row.status_detail


# -- proactive and on-demand ------------------------------------------------------------------


def test_fresh_tokens_are_used_as_stored(provider, emulator, store_engine, vault):
    credentials = provider.credentials()
    assert credentials.access_token == stored(store_engine, vault).access_token
    assert credentials.instance_url == emulator.info["instance_url"]
    assert token_calls(emulator) == 0


def test_tokens_older_than_the_lifetime_are_refreshed_before_use(
    provider, emulator, store_engine, vault, clock
):
    before = stored(store_engine, vault)
    clock.advance(7200 - 1)
    assert provider.credentials().access_token == before.access_token
    clock.advance(2)
    fresh = provider.credentials()
    assert fresh.access_token != before.access_token
    assert token_calls(emulator) == 1
    after = stored(store_engine, vault)
    assert after.access_token == fresh.access_token
    assert after.refresh_token == before.refresh_token  # no rotation: the old one is kept
    assert (after.issued_at - before.issued_at).total_seconds() == pytest.approx(7201, abs=1)
    assert provider.credentials().access_token == fresh.access_token  # now young again
    assert token_calls(emulator) == 1


def test_a_shorter_configured_lifetime_refreshes_sooner(
    store_engine, vault, oauth_client, clock, emulator, connected
):
    provider = TokenProvider(
        store_engine,
        tenant_id=TENANT,
        vault=vault,
        oauth=oauth_client,
        lifetime_seconds=600,
        clock=clock,
    )
    old = provider.credentials()
    clock.advance(601)
    assert provider.credentials().access_token != old.access_token
    assert token_calls(emulator) == 1


def test_refresh_hook_refreshes_once_and_later_callers_get_the_new_token(
    provider, emulator, store_engine, vault
):
    refused = provider.credentials()
    fresh = provider.refresh(refused)
    assert fresh.access_token != refused.access_token
    assert provider.refresh(refused).access_token == fresh.access_token
    assert token_calls(emulator) == 1
    assert stored(store_engine, vault).access_token == fresh.access_token


def test_rotated_refresh_token_is_stored_and_the_old_one_retired(
    provider, emulator, store_engine, vault, oauth_client, caplog
):
    caplog.set_level(logging.DEBUG)
    emulator.control.configure(rotate_refresh_tokens=True)
    before = stored(store_engine, vault)
    provider.refresh(provider.credentials())
    after = stored(store_engine, vault)
    assert after.refresh_token != before.refresh_token
    with pytest.raises(InvalidGrant):
        oauth_client.refresh(before.refresh_token)
    again = provider.refresh(provider.credentials())  # the stored, rotated token keeps working
    assert again.access_token != after.access_token
    latest = stored(store_engine, vault)
    assert latest.refresh_token not in (None, after.refresh_token)
    assert "refresh token rotated: True" in caplog.text
    for token in (before, after, latest):
        assert token.access_token not in caplog.text
        assert token.refresh_token not in caplog.text


# -- failures ---------------------------------------------------------------------------------


def test_invalid_grant_marks_reconnect_needed_and_stops_asking(
    provider, emulator, store_engine, vault, oauth_client
):
    refused = provider.credentials()
    oauth_client.revoke(stored(store_engine, vault).refresh_token)
    emulator.control.reset_stats()
    with pytest.raises(SessionInvalid) as caught:
        provider.refresh(refused)
    assert "Reconnect" in str(caught.value)
    assert status(store_engine) == ("reconnect_needed", RECONNECT_MESSAGE)
    assert token_calls(emulator) == 1
    with pytest.raises(SessionInvalid, match="reconnect_needed"):
        provider.refresh(refused)
    with pytest.raises(SessionInvalid, match="reconnect_needed"):
        provider.credentials()
    assert token_calls(emulator) == 1  # no retry loop against Salesforce


def test_a_transient_refresh_failure_is_unavailable_and_changes_nothing(
    provider, emulator, store_engine, vault
):
    refused = provider.credentials()
    emulator.control.add_fault(kind="status", status=503, times=3, path=TOKEN_PATH)
    with pytest.raises(SalesforceUnavailable, match="server_error"):
        provider.refresh(refused)
    assert status(store_engine) == ("connected", None)
    assert stored(store_engine, vault).access_token == refused.access_token


def test_a_tenant_without_tokens_is_told_to_connect(store_engine, vault, oauth_client):
    provider = TokenProvider(store_engine, tenant_id="ghost", vault=vault, oauth=oauth_client)
    with pytest.raises(SessionInvalid, match="connect"):
        provider.credentials()
    with pytest.raises(SessionInvalid, match="connect"):
        provider.refresh(Credentials("https://x.example", "00Dx!y"))


def test_lifetime_must_be_positive_and_env_values_are_checked(store_engine, vault, oauth_client):
    with pytest.raises(ValueError, match="lifetime"):
        TokenProvider(
            store_engine, tenant_id=TENANT, vault=vault, oauth=oauth_client, lifetime_seconds=0
        )
    assert session_lifetime({}) == 7200
    assert session_lifetime({"SALESFORCE_SESSION_LIFETIME_SECONDS": "900"}) == 900
    for bad in ("-5", "soon"):
        with pytest.raises(ValueError, match="SALESFORCE_SESSION_LIFETIME_SECONDS"):
            session_lifetime({"SALESFORCE_SESSION_LIFETIME_SECONDS": bad})


def test_provider_repr_and_errors_carry_no_secret(provider, store_engine, vault, oauth_client):
    tokens = stored(store_engine, vault)
    oauth_client.revoke(tokens.refresh_token)
    with pytest.raises(SessionInvalid) as caught:
        provider.refresh(provider.credentials())
    for text in (repr(provider), str(caught.value), repr(provider.credentials)):
        assert tokens.access_token not in text and tokens.refresh_token not in text


# -- through the client: a long paginated query survives an expired session -------------------


def test_refresh_in_the_middle_of_a_long_paginated_query(
    connect_env, store_engine, emulator, vault, connected
):
    client = TenantClients.from_settings(
        store_engine,
        Settings(connect_env),
        config=ClientConfig(batch_size=200, ca_bundle=emulator.info["ca_bundle"]),
    ).for_tenant(TENANT)
    before = stored(store_engine, vault)
    emulator.control.add_fault(kind="expire_sessions", after_calls=4)
    pages = list(client.query_pages("SELECT Id, Email FROM Contact"))
    ids = [record["Id"] for page in pages for record in page.records]
    live = {row["Id"] for row in emulator.control.truth("Contact") if not row["IsDeleted"]}
    assert len(pages) >= CONTACTS // 2000 + 10  # many pages: ~200 records each
    assert len(ids) == pages[0].total_size
    assert set(ids) == live  # every record once, the emulator's served duplicates aside
    calls = emulator.control.stats()["calls"]
    assert calls["token"] == 1
    assert calls["query"] + calls["query_more"] == len(pages) + 1  # one refused, sent again
    assert stored(store_engine, vault).access_token != before.access_token


def test_a_tenant_client_refreshes_an_old_token_before_the_first_call(
    connect_env, store_engine, emulator, vault, connected, clock
):
    clock.advance(7300)  # the emulator shares the clock: the stored session has expired there
    client = TenantClients.from_settings(
        store_engine, Settings(connect_env), clock=clock
    ).for_tenant(TENANT)
    assert client.describe("Contact")["name"] == "Contact"
    calls = emulator.control.stats()["calls"]
    assert calls["token"] == 1 and calls["describe"] == 1  # no 401 round trip


# -- one refresh however many ask ---------------------------------------------------------------


def test_concurrent_threads_refresh_once(provider, emulator):
    refused = provider.credentials()
    emulator.control.add_fault(kind="latency", seconds=0.3, times=1, path=TOKEN_PATH)
    start = threading.Barrier(5)
    results: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        start.wait()
        try:
            results.append(provider.refresh(refused).access_token)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(set(results)) == 1 and results[0] != refused.access_token
    assert token_calls(emulator) == 1


def _refresh_in_another_process(
    database_url: str,
    environ: dict[str, str],
    refused_token: str,
    instance_url: str,
    barrier: Any,
    results: Any,
) -> None:
    """Runs in a spawned process: a separate interpreter with its own engine and HTTP session."""
    engine = make_engine(database_url)
    try:
        provider = TokenProvider(
            engine,
            tenant_id=TENANT,
            vault=TokenVault(TokenCipher.from_settings(Settings(environ))),
            oauth=OAuthClient(SalesforceSettings.from_env(environ)),
        )
        barrier.wait(60)
        fresh = provider.refresh(Credentials(instance_url, refused_token))
        results.put(("ok", fresh.access_token))
    except BaseException as exc:  # reported to the parent, which fails the test
        results.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        engine.dispose()


def test_two_processes_refreshing_one_tenant_make_one_token_call(
    provider, emulator, connect_env, database_url
):
    refused = provider.credentials()
    emulator.control.add_fault(kind="latency", seconds=0.5, times=2, path=TOKEN_PATH)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    processes = [
        context.Process(
            target=_refresh_in_another_process,
            args=(
                database_url,
                connect_env,
                refused.access_token,
                refused.instance_url,
                barrier,
                results,
            ),
        )
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
    assert outcomes[0][1] == outcomes[1][1] != refused.access_token
    assert token_calls(emulator) == 1
    assert provider.credentials().access_token == outcomes[0][1]
