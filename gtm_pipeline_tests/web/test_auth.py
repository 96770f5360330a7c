"""Operator credentials: nothing gets in without one, revoked ones are refused, and a
tenant-scoped credential cannot see or touch another tenant on any route (404, as if absent)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gtm_pipeline.store.connections import (
    get_connector,
    list_operators,
    revoke_operator,
    upsert_connector,
)
from gtm_pipeline.store.tables import oauth_states
from gtm_pipeline_tests.support.web import csrf_from
from gtm_pipeline_tests.web.connecting import start_connection

# The flow's callback URL is plain http on loopback port 8765: the session cookie carries it.
SESSION_COOKIE = "gtm_session_8765"

ORG = "00D000000000001AAA"
PROTECTED = [
    ("GET", "/connectors"),
    ("GET", "/api/connectors"),
    ("GET", "/api/connectors/acme"),
    ("GET", "/api/connectors/salesforce/authorize?tenant=acme"),
    ("POST", "/api/connectors/salesforce/authorize?tenant=acme"),
    ("POST", "/connectors/tenants"),
    ("POST", "/connectors/acme/disconnect"),
]


@pytest.fixture()
def tenants(store_engine: sa.Engine) -> list[str]:
    """Two connected tenants."""
    with store_engine.begin() as conn:
        for tenant in ("acme", "globex"):
            upsert_connector(
                conn,
                tenant_id=tenant,
                connector_id="salesforce",
                instance_url=f"https://{tenant}.my.salesforce.com",
                org_id=ORG,
                status="connected",
            )
    return ["acme", "globex"]


def _states(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(oauth_states)).scalar_one()


def _revoke_all(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for row in list_operators(conn):
            assert revoke_operator(conn, row.credential_id)


def test_no_credential_is_401_for_api_clients(client, tenants, store_engine):
    api = client()
    for method, path in PROTECTED:
        answer = api.request(method, path)
        assert answer.status_code == 401, path
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert answer.json()["error"] == "unauthorized"
    assert _states(store_engine) == 0
    with store_engine.connect() as conn:
        assert get_connector(conn, "acme").status == "connected"


def test_no_credential_sends_a_browser_to_the_login(client, tenants):
    browser = client(html=True)
    for method, path in PROTECTED:
        answer = browser.request(method, path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/login"


@pytest.mark.parametrize(
    "header",
    ["Bearer gtmop_not-a-real-token", "Bearer ", "Basic dXNlcjpwYXNz", "gtmop_no-scheme"],
)
def test_wrong_or_malformed_bearer_is_refused_on_every_route(client, tenants, header):
    browser = client(html=True)
    for method, path in PROTECTED:
        answer = browser.request(method, path, headers={"Authorization": header})
        assert answer.status_code == 401, path
        assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_revoked_bearer_is_refused(client, tenants, make_operator, store_engine):
    api = client(make_operator())
    assert api.get("/api/connectors").status_code == 200
    _revoke_all(store_engine)
    answer = api.get("/api/connectors")
    assert answer.status_code == 401
    assert "revoked" in answer.json()["message"]


def test_revoking_ends_browser_sessions_made_with_the_credential(
    tenants, make_operator, store_engine, logged_in
):
    browser = logged_in(make_operator())
    assert browser.get("/connectors").status_code == 200
    assert SESSION_COOKIE in browser.cookies
    _revoke_all(store_engine)
    answer = browser.get("/connectors")
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert SESSION_COOKIE not in browser.cookies  # the dead session cookie was cleared
    assert browser.get("/api/connectors", headers={"Accept": "application/json"}).status_code == 401


def test_a_bad_bearer_wins_over_a_good_session(tenants, make_operator, logged_in):
    browser = logged_in(make_operator())
    answer = browser.get("/connectors", headers={"Authorization": "Bearer gtmop_wrong"})
    assert answer.status_code == 401


def test_admin_sees_every_tenant(client, tenants, make_operator):
    api = client(make_operator())
    listed = api.get("/api/connectors").json()["connectors"]
    assert [c["tenant_id"] for c in listed] == ["acme", "globex"]
    detail = api.get("/api/connectors/globex")
    assert detail.status_code == 200 and detail.json()["status"] == "connected"
    assert api.get("/api/connectors/initech").status_code == 404


def test_scoped_operator_sees_only_its_tenant(client, tenants, make_operator, logged_in):
    token = make_operator("acme")
    listed = client(token).get("/api/connectors").json()["connectors"]
    assert [c["tenant_id"] for c in listed] == ["acme"]
    page = logged_in(token).get("/connectors").text
    assert "acme" in page and "globex" not in page
    assert "Connect a new tenant" not in page  # the add-tenant form is for admins


def test_scoped_operator_of_a_tenant_never_connected_sees_it_as_not_connected(
    client, tenants, make_operator
):
    (only,) = client(make_operator("initech")).get("/api/connectors").json()["connectors"]
    assert only["tenant_id"] == "initech" and only["status"] is None


def test_scoped_operator_gets_404_for_other_tenants_on_every_route(
    client, tenants, make_operator, logged_in, store_engine
):
    token = make_operator("acme")
    browser = logged_in(token)
    api = client(token)
    csrf = csrf_from(browser.get("/connectors").text)
    for other in ("globex", "initech"):  # one that exists, one that does not
        attempts = [
            browser.get(f"/api/connectors/{other}", headers={"Accept": "*/*"}),
            browser.get("/api/connectors/salesforce/authorize", params={"tenant": other}),
            start_connection(browser, other),
            browser.post(f"/connectors/{other}/disconnect", data={"csrf_token": csrf}),
            browser.post("/connectors/tenants", data={"csrf_token": csrf, "tenant": other}),
            api.get(f"/api/connectors/{other}"),
            api.get("/api/connectors/salesforce/authorize", params={"tenant": other}),
            start_connection(api, other),
            api.post(f"/connectors/{other}/disconnect"),
            api.post("/connectors/tenants", data={"tenant": other}),
        ]
        assert [a.status_code for a in attempts] == [404] * len(attempts), other
        for answer in attempts:
            assert other not in answer.text  # not even echoed back
    # The same 404 for a tenant that exists and one that does not: nothing to tell apart.
    assert api.get("/api/connectors/globex").json() == api.get("/api/connectors/initech").json()
    assert _states(store_engine) == 0  # no connect flow was started for anyone
    with store_engine.connect() as conn:
        assert get_connector(conn, "globex").status == "connected"


def test_scoped_operator_may_start_connecting_its_own_tenant(
    client, tenants, make_operator, emulator, store_engine
):
    answer = start_connection(client(make_operator("acme")), "acme")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(
        f"{emulator.info['login_url']}/services/oauth2/authorize?"
    )
    assert _states(store_engine) == 1


def test_bad_tenant_id_is_a_clear_400(client, make_operator):
    answer = start_connection(client(make_operator()), "a:b")
    assert answer.status_code == 400
    assert "tenant id" in answer.json()["message"]
