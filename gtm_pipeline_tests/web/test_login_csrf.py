"""Login, logout and CSRF: every state-changing form needs the session's token (else 403),
the session cookie is HttpOnly, SameSite=Lax, Secure and `__Host-` named with an https callback
(port-named on loopback http), and logging out ends the session on the server."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa

from gtm_pipeline.connect.flow import ConnectFlow
from gtm_pipeline.store.connections import get_connector, upsert_connector
from gtm_pipeline.web.app import create_app
from gtm_pipeline.web.serving import BackgroundServer
from gtm_pipeline.web.session import CookiePolicy
from gtm_pipeline_tests.support.web import AppClient, csrf_from, no_org
from gtm_pipeline_tests.web.connecting import start_connection

# The flow's callback URL is plain http on loopback port 8765: the session cookie carries it.
COOKIE_NAME = "gtm_session_8765"
HTTPS_CALLBACK = "https://connect.example.com/api/connectors/salesforce/callback"


@pytest.fixture()
def acme(store_engine: sa.Engine) -> str:
    with store_engine.begin() as conn:
        upsert_connector(
            conn,
            tenant_id="acme",
            connector_id="salesforce",
            instance_url="https://acme.my.salesforce.com",
            org_id="00D000000000001AAA",
            status="connected",
        )
    return "acme"


def _set_cookie(answer) -> str:
    return answer.headers["set-cookie"]


def test_login_page_sets_a_lax_httponly_cookie_and_a_csrf_field(client):
    browser = client(html=True)
    page = browser.get("/login")
    assert page.status_code == 200
    cookie = _set_cookie(page).lower()
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # this app was built with secure_cookies=False
    assert csrf_from(page.text)
    assert 'type="password"' in page.text


def test_cookies_are_secure_by_default(store_engine, flow):
    app = create_app(
        store_engine, flow, session_secret=secrets.token_urlsafe(32), tenant_client=no_org
    )
    with BackgroundServer(app) as server:
        page = AppClient(server.base_url, html=True).get("/login")
    assert "; secure" in _set_cookie(page).lower()


def _https_app(store_engine, oauth_client, signer, vault, session_secret: str):
    """The app of a deployment whose browsers reach it over https (served here over http:
    the test reads the Set-Cookie headers, it does not need the browser to send them back)."""
    flow = ConnectFlow(
        store_engine, oauth=oauth_client, signer=signer, vault=vault, callback_url=HTTPS_CALLBACK
    )
    return create_app(
        store_engine,
        flow,
        secure_cookies=False,
        session_secret=session_secret,
        tenant_client=no_org,
    )


def _attributes(cookie: str) -> tuple[str, set[str]]:
    first, *rest = (part.strip() for part in cookie.split(";"))
    return first.partition("=")[0], {part.lower() for part in rest}


def test_an_https_callback_makes_both_cookies_secure_and_host_prefixed(
    store_engine, oauth_client, signer, vault, session_secret, make_operator
):
    app = _https_app(store_engine, oauth_client, signer, vault, session_secret)
    with BackgroundServer(app) as server:
        login = AppClient(server.base_url, html=True).get("/login")
        started = start_connection(AppClient(server.base_url, token=make_operator()))
    assert started.status_code == 303
    cookies = dict(_attributes(c) for c in started.raw.headers.getlist("set-cookie"))
    cookies.update([_attributes(_set_cookie(login))])
    assert set(cookies) == {"__Host-gtm_session", "__Host-gtm_oauth_binding"}
    for attributes in cookies.values():
        assert {"secure", "httponly", "samesite=lax", "path=/"} <= attributes
        assert not any(a.startswith("domain") for a in attributes)  # __Host- forbids it


@pytest.mark.parametrize(
    ("callback", "secure", "expected"),
    [
        (
            HTTPS_CALLBACK,
            False,
            CookiePolicy(True, "__Host-gtm_session", "__Host-gtm_oauth_binding"),
        ),
        (
            "https://[::1]:8443/cb",
            False,
            CookiePolicy(True, "__Host-gtm_session", "__Host-gtm_oauth_binding"),
        ),
        (
            "http://127.0.0.1:8765/cb",
            False,
            CookiePolicy(False, "gtm_session_8765", "gtm_oauth_binding_8765"),
        ),
        (
            "http://localhost/cb",
            False,
            CookiePolicy(False, "gtm_session_80", "gtm_oauth_binding_80"),
        ),
        (
            "http://127.0.0.1:9000/cb",
            True,
            CookiePolicy(True, "gtm_session_9000", "gtm_oauth_binding_9000"),
        ),
    ],
)
def test_cookie_policy_follows_the_callback_url(callback, secure, expected):
    assert CookiePolicy.for_callback(callback, secure=secure) == expected


def test_logout_ends_the_session_on_the_server(client, make_operator, logged_in):
    """A copy of the cookie taken before logout (a shared machine, a stolen cookie) is refused."""
    token = make_operator()
    browser, elsewhere = logged_in(token), logged_in(token)
    old_cookie = browser.cookies[COOKIE_NAME]
    csrf = csrf_from(browser.get("/connectors").text)
    assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 303

    replayed = client(html=True)
    replayed.cookies.set(COOKIE_NAME, old_cookie)
    answer = replayed.get("/connectors")
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    api = client()
    api.cookies.set(COOKIE_NAME, old_cookie)
    assert api.get("/api/connectors").status_code == 401
    # The login page does not take it for a live session either, and the logout was for the
    # credential: its other browser is logged out too.
    login = client(html=True)
    login.cookies.set(COOKIE_NAME, old_cookie)
    assert login.get("/login").status_code == 200
    assert elsewhere.get("/connectors").status_code == 303
    # Logging in again works, and the bearer token itself was never affected.
    assert logged_in(token).get("/connectors").status_code == 200
    assert client(token).get("/api/connectors").status_code == 200


def test_login_without_or_with_a_wrong_csrf_token_is_403(client, make_operator):
    token = make_operator()
    browser = client(html=True)
    good = csrf_from(browser.get("/login").text)
    for form in [{"token": token}, {"token": token, "csrf_token": good[:-1] + "x"}]:
        answer = browser.post("/login", data=form)
        assert answer.status_code == 403
        assert "did not come from this site" in answer.text
    # A form token without the cookie it belongs to is no good either.
    stranger = client(html=True)
    assert stranger.post("/login", data={"token": token, "csrf_token": good}).status_code == 403
    assert browser.get("/connectors").status_code == 303  # still not logged in


def test_wrong_token_stays_on_the_login_page_with_a_plain_message(client, make_operator):
    make_operator()
    browser = client(html=True)
    csrf = csrf_from(browser.get("/login").text)
    answer = browser.post("/login", data={"token": "gtmop_guess", "csrf_token": csrf})
    assert answer.status_code == 401
    assert "not valid, or it was revoked" in answer.text
    assert browser.get("/connectors").status_code == 303


def test_login_then_logout(client, make_operator, acme):
    token = make_operator(label="Ops <team>")
    browser = client(html=True)
    anonymous_csrf = csrf_from(browser.get("/login").text)
    answer = browser.post("/login", data={"token": token, "csrf_token": anonymous_csrf})
    assert answer.status_code == 303 and answer.headers["location"] == "/connectors"
    page = browser.get("/connectors")
    assert page.status_code == 200
    assert "Ops &lt;team&gt; (admin)" in page.text
    assert browser.get("/login").headers["location"] == "/connectors"
    session_csrf = csrf_from(page.text)
    assert session_csrf != anonymous_csrf  # rotated at login
    assert browser.post("/logout", data={"csrf_token": anonymous_csrf}).status_code == 403
    assert browser.post("/logout").status_code == 403
    assert browser.get("/connectors").status_code == 200  # the refused logouts changed nothing
    out = browser.post("/logout", data={"csrf_token": session_csrf})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert COOKIE_NAME not in browser.cookies
    assert browser.get("/connectors").status_code == 303


def test_disconnect_and_add_tenant_forms_need_the_csrf_token(
    client, make_operator, logged_in, acme, store_engine, emulator
):
    browser = logged_in(make_operator())
    csrf = csrf_from(browser.get("/connectors").text)
    for data in [{}, {"csrf_token": "forged"}]:
        assert browser.post("/connectors/acme/disconnect", data=data).status_code == 403
        refused = browser.post("/connectors/tenants", data={**data, "tenant": "initech"})
        assert refused.status_code == 403
    with store_engine.connect() as conn:
        assert get_connector(conn, "acme").status == "connected"
    added = browser.post("/connectors/tenants", data={"csrf_token": csrf, "tenant": "initech"})
    assert added.status_code == 303  # straight to Salesforce: the POST itself starts the flow
    assert added.headers["location"].startswith(emulator.info["login_url"])


def test_bearer_calls_need_no_csrf_token(client, make_operator, acme, store_engine, emulator):
    answer = client(make_operator()).post("/connectors/acme/disconnect")
    assert answer.status_code == 200  # no tokens were stored, so nothing to revoke
    with store_engine.connect() as conn:
        assert get_connector(conn, "acme").status == "disconnected"


def test_add_tenant_refuses_a_bad_id_in_plain_words(logged_in, make_operator):
    browser = logged_in(make_operator())
    csrf = csrf_from(browser.get("/connectors").text)
    answer = browser.post("/connectors/tenants", data={"csrf_token": csrf, "tenant": "a b"})
    assert answer.status_code == 400
    assert "1 to 64 letters" in answer.text
