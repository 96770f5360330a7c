"""The connect flow end to end: emulator over HTTPS, store on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from gtm_pipeline.config import ConfigError, SalesforceSettings, Settings
from gtm_pipeline.connect.flow import ConnectFlow
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.salesforce.client import ClientConfig, Credentials, SalesforceClient
from gtm_pipeline.salesforce.crypto import InvalidKeyError
from gtm_pipeline.salesforce.oauth import InvalidGrant, OAuthClient, TokenResponse, new_pkce_pair
from gtm_pipeline.salesforce.oauth_state import StateSigner
from gtm_pipeline.store import connector_tokens, connectors
from gtm_pipeline.store.connections import (
    ConnectorRow,
    OAuthStateRow,
    get_connector,
)
from gtm_pipeline.store.tables import oauth_states
from gtm_pipeline_tests.support.connect import BINDING, CALLBACK_URL

TENANT = "acme"


def snapshot(engine: sa.Engine) -> dict[str, list[tuple]]:
    """Every row of the tables a callback may write, to prove a refused one wrote nothing."""
    tables = {"connectors": connectors, "tokens": connector_tokens, "states": oauth_states}
    with engine.connect() as conn:
        return {
            name: sorted(tuple(row) for row in conn.execute(sa.select(table)))
            for name, table in tables.items()
        }


def connector(engine: sa.Engine, tenant_id: str = TENANT) -> ConnectorRow | None:
    with engine.connect() as conn:
        return get_connector(conn, tenant_id)


def load_tokens(engine, vault, tenant_id: str = TENANT):
    with engine.connect() as conn:
        return vault.load(conn, tenant_id)


def callback_params(flow, emulator, browser, tenant_id: str = TENANT) -> dict[str, str]:
    return browser(emulator, flow.start(tenant_id, "salesforce", BINDING))


@pytest.mark.parametrize(
    ("tenant_id", "connector_id", "fragment"),
    [
        ("", "salesforce", "tenant_id"),
        ("t" * 65, "salesforce", "tenant_id"),
        ("a:b", "salesforce", "tenant_id"),
        ("acme", "", "connector_id"),
        ("ac\nme", "salesforce", "tenant_id"),
    ],
)
def test_start_refuses_unusable_ids_and_stores_nothing(
    flow, store_engine, tenant_id, connector_id, fragment
):
    with pytest.raises(ValueError, match=fragment):
        flow.start(tenant_id, connector_id, BINDING)
    assert snapshot(store_engine)["states"] == []


# -- the happy path ---------------------------------------------------------------------------


def test_start_builds_the_documented_authorize_url_and_remembers_the_flow(
    flow, emulator, signer, vault, store_engine
):
    url = flow.start(TENANT, "salesforce", BINDING)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"{emulator.info['login_url']}/services/oauth2/authorize"
    )
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == emulator.info["client_id"]
    assert query["redirect_uri"] == CALLBACK_URL
    assert query["scope"] == "api refresh_token"
    assert query["code_challenge_method"] == "S256"
    verified = signer.verify(query["state"])
    assert (verified.tenant_id, verified.connector_id) == (TENANT, "salesforce")
    with store_engine.connect() as conn:
        [row] = conn.execute(sa.select(oauth_states)).all()
    assert row.nonce == verified.nonce and row.consumed_at is None
    assert row.redirect_uri == CALLBACK_URL
    verifier = vault.decrypt_verifier(OAuthStateRow(**row._mapping))
    assert verifier not in row.code_verifier_ct
    digest = hashlib.sha256(verifier.encode()).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_whole_flow_connects_the_tenant_with_encrypted_working_tokens(
    connect_tenant, emulator, store_engine, vault
):
    outcome = connect_tenant(TENANT)
    assert (outcome.ok, outcome.http_status, outcome.status) == (True, 200, "connected")
    assert outcome.tenant_id == TENANT and emulator.info["org_id"] in outcome.message
    row = connector(store_engine)
    assert row.status == "connected" and row.status_detail is None
    assert row.instance_url == emulator.info["instance_url"]
    assert row.org_id == emulator.info["org_id"]
    assert row.connected_at is not None
    tokens = load_tokens(store_engine, vault)
    assert tokens.instance_url == emulator.info["instance_url"]
    assert tokens.refresh_token and tokens.issued_at.tzinfo is not None
    with store_engine.connect() as conn:
        [stored] = conn.execute(sa.select(connector_tokens)).all()
        [state] = conn.execute(sa.select(oauth_states)).all()
    assert tokens.access_token not in stored.access_token_ct
    assert tokens.refresh_token not in stored.refresh_token_ct
    assert stored.key_id == vault.key_id
    assert state.consumed_at is not None
    client = SalesforceClient(
        Credentials(tokens.instance_url, tokens.access_token),
        config=ClientConfig(ca_bundle=emulator.info["ca_bundle"]),
    )
    assert client.describe("Account")["name"] == "Account"


# -- refused states: 400 and not one row changed -----------------------------------------------


def _tampered(state: str) -> str:
    payload, _, mac = state.partition(".")
    flipped = "A" if mac[0] != "A" else "B"
    return f"{payload}.{flipped}{mac[1:]}"


BAD_STATES = {
    "tampered": _tampered,
    "truncated": lambda state: state[: len(state) - 6],
    "non_ascii": lambda state: state[:-1] + "é",
    "oversized": lambda state: state + "A" * 2000,
    "missing": lambda state: "",
    "garbage": lambda state: "not-a-state",
}


@pytest.mark.parametrize("kind", sorted(BAD_STATES))
def test_bad_states_are_refused_and_store_nothing(kind, flow, emulator, browser, store_engine):
    params = callback_params(flow, emulator, browser)
    before = snapshot(store_engine)
    outcome = flow.finish({**params, "state": BAD_STATES[kind](params["state"])}, BINDING)
    assert (outcome.ok, outcome.http_status, outcome.status, outcome.tenant_id) == (
        False,
        400,
        None,
        None,
    )
    assert "start the connection again" in outcome.message
    assert snapshot(store_engine) == before
    assert connector(store_engine) is None


def test_a_state_signed_with_another_secret_is_refused(
    flow, emulator, browser, store_engine, clock
):
    params = callback_params(flow, emulator, browser)
    forged, _ = StateSigner("x" * 40, clock=clock).issue(TENANT, "salesforce")
    before = snapshot(store_engine)
    outcome = flow.finish({**params, "state": forged}, BINDING)
    assert outcome.http_status == 400 and snapshot(store_engine) == before


def test_an_expired_state_is_refused(flow, emulator, browser, store_engine, clock):
    params = callback_params(flow, emulator, browser)
    clock.advance(601)
    before = snapshot(store_engine)
    outcome = flow.finish(params, BINDING)
    assert (outcome.ok, outcome.http_status) == (False, 400)
    assert "expired" in outcome.message
    assert snapshot(store_engine) == before


def test_a_replayed_callback_is_refused_and_changes_nothing(
    flow, emulator, browser, store_engine, vault
):
    params = callback_params(flow, emulator, browser)
    assert flow.finish(params, BINDING).ok
    before = snapshot(store_engine)
    tokens = load_tokens(store_engine, vault)
    replay = flow.finish(params, BINDING)
    assert (replay.ok, replay.http_status, replay.status) == (False, 400, None)
    assert "already used" in replay.message
    assert snapshot(store_engine) == before
    assert load_tokens(store_engine, vault).access_token == tokens.access_token


# -- refusals by the user or the token endpoint: status `failed`, in plain words ---------------


def test_access_denied_records_failed_in_plain_words(flow, emulator, browser, store_engine):
    emulator.control.configure(auto_approve=False)
    params = browser(emulator, flow.start(TENANT, "salesforce", BINDING), decision="deny")
    assert params["error"] == "access_denied"
    outcome = flow.finish(params, BINDING)
    assert (outcome.ok, outcome.http_status, outcome.status) == (False, 403, "failed")
    assert "Access was denied" in outcome.message
    row = connector(store_engine)
    assert row.status == "failed" and row.status_detail == outcome.message
    assert row.instance_url is None and row.connected_at is None
    assert snapshot(store_engine)["tokens"] == []


def _burn_code(emulator, params, clock, store_engine):
    """Present the code once with a wrong verifier: Salesforce codes die on first use."""
    emulator_client = OAuthClient(
        SalesforceSettings(
            login_url=emulator.info["login_url"],
            ca_bundle=emulator.info["ca_bundle"],
            client_id=emulator.info["client_id"],
            client_secret=emulator.info["client_secret"],
        )
    )
    with pytest.raises(InvalidGrant):
        emulator_client.exchange_code(
            code=params["code"], redirect_uri=CALLBACK_URL, code_verifier=new_pkce_pair()[0]
        )


def _expire_code(emulator, params, clock, store_engine):
    emulator.control.configure(code_lifetime=1)
    clock.advance(5)


def _change_redirect(emulator, params, clock, store_engine):
    """As if SALESFORCE_CALLBACK_URL changed between start and callback."""
    with store_engine.begin() as conn:
        conn.execute(sa.update(oauth_states).values(redirect_uri="http://127.0.0.1:9/elsewhere"))


def _token_endpoint_down(emulator, params, clock, store_engine):
    emulator.control.add_fault(kind="status", status=503, times=1, path=r"^/services/oauth2/token$")


TOKEN_ERRORS = {
    "reused_code": (_burn_code, 400, "already used"),
    "expired_code": (_expire_code, 400, "expired"),
    "redirect_uri_mismatch": (_change_redirect, 400, "SALESFORCE_CALLBACK_URL"),
    "server_error": (_token_endpoint_down, 502, "temporary problem"),
}


@pytest.mark.parametrize("kind", sorted(TOKEN_ERRORS))
def test_token_endpoint_errors_record_failed_in_plain_words(
    kind, flow, emulator, browser, store_engine, clock
):
    params = callback_params(flow, emulator, browser)
    provoke, http_status, words = TOKEN_ERRORS[kind]
    provoke(emulator, params, clock, store_engine)
    outcome = flow.finish(params, BINDING)
    assert (outcome.ok, outcome.http_status, outcome.status) == (False, http_status, "failed")
    assert words in outcome.message
    assert params["code"] not in outcome.message
    row = connector(store_engine)
    assert (row.status, row.status_detail) == ("failed", outcome.message)
    assert snapshot(store_engine)["tokens"] == []


def test_wrong_client_secret_is_invalid_client_recorded_as_failed(
    store_engine, emulator, browser, signer, vault, clock
):
    info = emulator.info
    settings = SalesforceSettings(
        login_url=info["login_url"],
        ca_bundle=info["ca_bundle"],
        client_id=info["client_id"],
        client_secret="w" * 64,
    )
    flow = ConnectFlow(
        store_engine,
        oauth=OAuthClient(settings),
        signer=signer,
        vault=vault,
        callback_url=CALLBACK_URL,
        clock=clock,
    )
    outcome = flow.finish(browser(emulator, flow.start(TENANT, "salesforce", BINDING)), BINDING)
    assert (outcome.ok, outcome.http_status, outcome.status) == (False, 400, "failed")
    assert "SALESFORCE_CLIENT_SECRET" in outcome.message and "w" * 64 not in outcome.message
    assert connector(store_engine).status == "failed"


def test_a_refused_reconnect_keeps_a_working_connection(
    connect_tenant, flow, emulator, browser, store_engine, vault
):
    assert connect_tenant(TENANT).ok
    tokens = load_tokens(store_engine, vault)
    emulator.control.configure(auto_approve=False)
    denied = flow.finish(
        browser(emulator, flow.start(TENANT, "salesforce", BINDING), decision="deny"), BINDING
    )
    assert (denied.ok, denied.status) == (False, "connected")
    row = connector(store_engine)
    assert row.status == "connected" and "Access was denied" in row.status_detail
    assert load_tokens(store_engine, vault).access_token == tokens.access_token


def flow_for_another_org(start_emulator, store_engine, signer, vault, clock):
    """A second emulator (another org) and a ConnectFlow for it on the same store."""
    other = start_emulator(org=Org.generate(seed=99, counts={"Account": 2, "Contact": 2}))
    info = other.info
    settings = SalesforceSettings(
        login_url=info["login_url"],
        ca_bundle=info["ca_bundle"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        allow_any_instance=True,
    )
    flow = ConnectFlow(
        store_engine,
        oauth=OAuthClient(settings),
        signer=signer,
        vault=vault,
        callback_url=CALLBACK_URL,
        clock=clock,
    )
    return other, flow


def test_a_second_org_is_refused_while_the_first_is_connected(
    connect_tenant, store_engine, vault, signer, clock, start_emulator, browser
):
    assert connect_tenant(TENANT).ok
    first = load_tokens(store_engine, vault)
    other, other_flow = flow_for_another_org(start_emulator, store_engine, signer, vault, clock)
    info = other.info
    other.control.reset_stats()
    outcome = other_flow.finish(
        browser(other, other_flow.start(TENANT, "salesforce", BINDING)), BINDING
    )
    assert (outcome.ok, outcome.http_status, outcome.status) == (False, 400, "connected")
    assert "Disconnect the tenant first" in outcome.message
    assert load_tokens(store_engine, vault).access_token == first.access_token
    assert connector(store_engine).org_id != info["org_id"]
    assert other.control.stats()["calls"]["revoke"] == 1  # the unwanted grant was revoked


class NoRefreshTokenOAuth(OAuthClient):
    """A connected app that does not allow refresh tokens: the exchange returns none."""

    revoked: list[str]

    def exchange_code(self, **kwargs: str) -> TokenResponse:
        self.revoked = []
        return replace(super().exchange_code(**kwargs), refresh_token=None)

    def revoke(self, token: str) -> None:
        self.revoked.append(token)
        super().revoke(token)


def test_a_grant_without_refresh_token_is_refused_and_revoked(
    store_engine, emulator, browser, signer, vault, clock, sf_settings
):
    oauth = NoRefreshTokenOAuth(sf_settings)
    flow = ConnectFlow(
        store_engine,
        oauth=oauth,
        signer=signer,
        vault=vault,
        callback_url=CALLBACK_URL,
        clock=clock,
    )
    outcome = flow.finish(browser(emulator, flow.start(TENANT, "salesforce", BINDING)), BINDING)
    assert (outcome.ok, outcome.http_status, outcome.status) == (False, 502, "failed")
    assert "refresh_token scope" in outcome.message
    assert len(oauth.revoked) == 1  # the lone access token does not stay alive
    assert snapshot(store_engine)["tokens"] == []


def test_an_unknown_authorize_error_is_shown_shortened_and_recorded(
    flow, emulator, browser, store_engine
):
    params = callback_params(flow, emulator, browser)
    outcome = flow.finish(
        {"state": params["state"], "error": "odd_error", "error_description": "x" * 5000}, BINDING
    )
    assert (outcome.ok, outcome.http_status, outcome.status) == (False, 400, "failed")
    assert outcome.message.startswith("Salesforce refused the connection: odd_error (")
    assert len(outcome.message) < 400
    assert connector(store_engine).status_detail == outcome.message


# -- disconnect --------------------------------------------------------------------------------


def test_disconnect_revokes_at_salesforce_and_deletes_the_ciphertext(
    connect_tenant, flow, store_engine, vault, oauth_client
):
    assert connect_tenant(TENANT).ok
    tokens = load_tokens(store_engine, vault)
    outcome = flow.disconnect(TENANT)
    assert (outcome.ok, outcome.http_status, outcome.status) == (True, 200, "disconnected")
    assert connector(store_engine).status == "disconnected"
    assert snapshot(store_engine)["tokens"] == []
    with pytest.raises(InvalidGrant):
        oauth_client.refresh(tokens.refresh_token)


def test_disconnect_deletes_local_tokens_even_when_revoke_fails(
    connect_tenant, flow, emulator, store_engine, oauth_client, vault
):
    assert connect_tenant(TENANT).ok
    tokens = load_tokens(store_engine, vault)
    emulator.control.add_fault(
        kind="status", status=503, times=1, path=r"^/services/oauth2/revoke$"
    )
    outcome = flow.disconnect(TENANT)
    assert (outcome.ok, outcome.http_status, outcome.status) == (False, 502, "disconnected")
    assert "Salesforce Setup" in outcome.message
    assert snapshot(store_engine)["tokens"] == []
    row = connector(store_engine)
    assert row.status == "disconnected" and row.status_detail == outcome.message
    assert oauth_client.refresh(tokens.refresh_token).access_token  # it really was not revoked


def test_disconnect_of_an_unknown_tenant_is_404(flow, store_engine):
    outcome = flow.disconnect("nobody")
    assert (outcome.ok, outcome.http_status, outcome.status) == (False, 404, None)
    assert snapshot(store_engine)["connectors"] == []


def test_reconnect_after_disconnect_works(connect_tenant, flow, store_engine):
    assert connect_tenant(TENANT).ok
    assert flow.disconnect(TENANT).ok
    again = connect_tenant(TENANT)
    assert again.ok and connector(store_engine).status == "connected"


# -- configuration and secrecy -----------------------------------------------------------------


def test_from_settings_builds_a_working_flow(connect_env, store_engine, emulator, browser):
    flow = ConnectFlow.from_settings(store_engine, Settings(connect_env))
    assert flow.callback_url == CALLBACK_URL
    assert flow.finish(browser(emulator, flow.start(TENANT, "salesforce", BINDING)), BINDING).ok


@pytest.mark.parametrize(
    ("variable", "value", "error"),
    [
        ("CLERK_SECRET_KEY", "short", ConfigError),
        ("CONNECTOR_ENCRYPTION_KEY", "abc123", InvalidKeyError),
        ("SALESFORCE_CLIENT_SECRET", "", ConfigError),
        ("SALESFORCE_LOGIN_URL", "http://plain.example", ConfigError),
    ],
)
def test_from_settings_names_the_bad_variable_never_its_value(
    connect_env, store_engine, variable, value, error
):
    env = {**connect_env, variable: value}
    with pytest.raises(error) as caught:
        ConnectFlow.from_settings(store_engine, Settings(env))
    assert variable in str(caught.value)
    if value:
        assert value not in str(caught.value)


def test_no_secret_reaches_logs_reprs_or_messages(
    connect_tenant, flow, emulator, store_engine, vault, encryption_key, state_secret, caplog
):
    caplog.set_level(logging.DEBUG)
    outcome = connect_tenant(TENANT)
    tokens = load_tokens(store_engine, vault)
    disconnected = flow.disconnect(TENANT)
    secrets_ = [
        tokens.access_token,
        tokens.refresh_token,
        emulator.info["client_secret"],
        encryption_key,
        state_secret,
    ]
    texts = [
        caplog.text,
        repr(flow),
        repr(tokens),
        repr(outcome),
        repr(disconnected),
        repr(vault),
    ]
    for text in texts:
        for secret in secrets_:
            assert secret not in text


def test_switching_orgs_after_a_disconnect_clears_the_old_orgs_data_and_cursors(
    connect_tenant, flow, store_engine, vault, signer, clock, start_emulator, browser
):
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from gtm_pipeline.store import Cursor, persons, save_cursor, sync_state, upsert_records

    assert connect_tenant(TENANT).ok
    stamp = datetime(2025, 6, 1, tzinfo=UTC)
    with store_engine.begin() as conn:
        upsert_records(
            conn,
            persons,
            [{"tenant_id": TENANT, "external_id": "003RO000003RzQiYAK", "system_modstamp": stamp}],
        )
        save_cursor(conn, TENANT, "persons", Cursor(stamp, "003RO000003RzQiYAK"), "full")
    assert flow.disconnect(TENANT).ok
    other, other_flow = flow_for_another_org(start_emulator, store_engine, signer, vault, clock)
    info = other.info
    outcome = other_flow.finish(
        browser(other, other_flow.start(TENANT, "salesforce", BINDING)), BINDING
    )
    assert (outcome.ok, outcome.status) == (True, "connected")
    assert connector(store_engine).org_id == info["org_id"]
    with store_engine.connect() as conn:
        for table in (persons, sync_state):
            count = conn.execute(
                sa.select(sa.func.count()).where(table.c.tenant_id == TENANT)
            ).scalar_one()
            assert count == 0, table.name
