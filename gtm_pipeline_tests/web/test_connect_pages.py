"""The connect flow through the app: authorize → Salesforce → callback → connectors page →
disconnect, the callback's refusals (400, nothing stored), a denied consent in plain words, and
the binding of a flow to the browser and operator that started it (403, nothing connected)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from gtm_pipeline.store.connections import get_connector, load_token_row
from gtm_pipeline.store.tables import connector_tokens, connectors, oauth_states
from gtm_pipeline.web.routes import AUTHORIZE_PATH
from gtm_pipeline_tests.support.connect import CALLBACK_URL, follow_authorize
from gtm_pipeline_tests.support.web import csrf_from
from gtm_pipeline_tests.web.connecting import (
    CALLBACK,
    approved_callback,
    authorize_url,
    start_connection,
)

# The flow's callback URL is plain http on loopback port 8765: the cookies carry that port.
BINDING_COOKIE = "gtm_oauth_binding_8765"


def _rows(engine: sa.Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        count = sa.select(sa.func.count())
        return (
            conn.execute(count.select_from(connectors)).scalar_one(),
            conn.execute(count.select_from(connector_tokens)).scalar_one(),
        )


def test_connect_and_disconnect_from_the_pages(logged_in, make_operator, emulator, store_engine):
    browser = logged_in(make_operator())
    csrf = csrf_from(browser.get("/connectors").text)
    added = browser.post("/connectors/tenants", data={"csrf_token": csrf, "tenant": "acme"})
    assert added.status_code == 303  # straight to Salesforce, with the binding cookie
    params = follow_authorize(emulator, added.headers["location"])

    done = browser.get(CALLBACK, params=params)
    assert done.status_code == 200
    assert "Salesforce connected" in done.text and "Connected: tenant acme" in done.text
    assert done.headers["Cache-Control"] == "no-store"
    assert BINDING_COOKIE not in browser.cookies  # spent, so cleared
    with store_engine.connect() as conn:
        assert get_connector(conn, "acme").status == "connected"
        stored = load_token_row(conn, "acme")
    assert stored is not None and stored.refresh_token_ct
    page = browser.get("/connectors").text
    assert "Connected" in page and ">Disconnect</button>" in page

    revokes_before = emulator.control.stats()["calls"].get("revoke", 0)
    gone = browser.post("/connectors/acme/disconnect", data={"csrf_token": csrf})
    assert gone.status_code == 200
    assert "Disconnected" in gone.text and "revoked at Salesforce" in gone.text
    assert emulator.control.stats()["calls"]["revoke"] == revokes_before + 1
    with store_engine.connect() as conn:
        assert get_connector(conn, "acme").status == "disconnected"
        assert load_token_row(conn, "acme") is None
    assert ">Disconnect</button>" not in browser.get("/connectors").text


def _states(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(oauth_states)).scalar_one()


def test_starting_sets_a_port_scoped_httponly_lax_binding_cookie(logged_in, make_operator):
    answer = start_connection(logged_in(make_operator()))
    assert answer.status_code == 303
    [cookie] = [c for c in answer.raw.headers.getlist("set-cookie") if "binding" in c]
    attributes = [part.strip().lower() for part in cookie.split(";")]
    name, _, nonce = cookie.partition(";")[0].partition("=")
    assert name == BINDING_COOKIE and len(nonce) >= 43  # 256 random bits
    assert {"httponly", "samesite=lax", "path=/", "max-age=600"} <= set(attributes)
    assert "secure" not in attributes  # this app's callback is plain http on loopback
    assert nonce not in answer.headers["location"]  # the link alone does not carry it


def test_a_get_of_the_start_url_starts_nothing(logged_in, client, make_operator, store_engine):
    token = make_operator()
    page = logged_in(token).get(AUTHORIZE_PATH, params={"tenant": "acme"})
    assert page.status_code == 200
    assert f'method="post" action="{AUTHORIZE_PATH}"' in page.text and csrf_from(page.text)
    assert 'name="tenant" value="acme"' in page.text
    api = client(token).get(AUTHORIZE_PATH, params={"tenant": "acme"})
    assert api.status_code == 405 and api.headers["Allow"] == "POST"
    assert _states(store_engine) == 0
    assert not page.cookies and not api.cookies


def test_the_button_on_the_get_page_starts_the_flow(logged_in, make_operator, emulator):
    browser = logged_in(make_operator())
    page = browser.get(AUTHORIZE_PATH, params={"tenant": "acme"})
    form = {"csrf_token": csrf_from(page.text), "tenant": "acme", "connector": "salesforce"}
    answer = browser.post(AUTHORIZE_PATH, data=form)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(emulator.info["login_url"])


def test_callback_without_the_binding_cookie_connects_nothing(
    client, logged_in, make_operator, emulator, store_engine
):
    token = make_operator()
    starter = logged_in(token)
    calls = emulator.control.stats()["calls"].get("token", 0)
    for stranger in (client(html=True), logged_in(token)):  # no session; same operator, no cookie
        answer = stranger.get(CALLBACK, params=approved_callback(starter, emulator))
        assert answer.status_code == 403
        assert "started in another browser or by another operator" in answer.text
    assert emulator.control.stats()["calls"].get("token", 0) == calls
    assert _rows(store_engine) == (0, 0)


def test_callback_with_another_flows_cookie_connects_nothing(
    logged_in, make_operator, emulator, store_engine
):
    token = make_operator()
    first, second = logged_in(token), logged_in(token)
    params = approved_callback(first, emulator, "acme")
    approved_callback(second, emulator, "globex")  # second now holds its own binding cookie
    answer = second.get(CALLBACK, params=params)
    assert answer.status_code == 403
    assert _rows(store_engine) == (0, 0)
    # The refused callback spent acme's state: not even the right browser can use it now.
    assert first.get(CALLBACK, params=params).status_code == 400
    assert _rows(store_engine) == (0, 0)


def test_callback_with_the_right_cookie_but_another_operators_session_connects_nothing(
    logged_in, make_operator, emulator, store_engine
):
    starter, other = logged_in(make_operator("acme")), logged_in(make_operator("acme"))
    params = approved_callback(starter, emulator)
    [cookie] = [c for c in starter.cookies if c.name == BINDING_COOKIE]
    other.cookies.set_cookie(cookie)
    answer = other.get(CALLBACK, params=params)
    assert answer.status_code == 403
    assert _rows(store_engine) == (0, 0)


def test_callback_with_the_right_cookie_after_logging_out_connects_nothing(
    logged_in, make_operator, emulator, store_engine
):
    browser = logged_in(make_operator())
    params = approved_callback(browser, emulator)
    csrf = csrf_from(browser.get("/connectors").text)
    assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert BINDING_COOKIE in browser.cookies
    assert browser.get(CALLBACK, params=params).status_code == 403
    assert _rows(store_engine) == (0, 0)


def test_a_bearer_client_that_starts_a_flow_can_finish_it(client, make_operator, emulator):
    """A script holding the token and its cookie jar, not only a browser, can connect."""
    api = client(make_operator(), html=True)
    answer = api.get(CALLBACK, params=approved_callback(api, emulator))
    assert answer.status_code == 200 and "Connected: tenant acme" in answer.text


def _tampered(state: str) -> str:
    middle = len(state) // 2
    return state[:middle] + ("A" if state[middle] != "A" else "B") + state[middle + 1 :]


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda p: {}, id="no-parameters"),
        pytest.param(lambda p: {"code": p["code"]}, id="no-state"),
        pytest.param(lambda p: {**p, "state": _tampered(p["state"])}, id="tampered"),
        pytest.param(lambda p: {**p, "state": p["state"][:-6]}, id="truncated"),
        pytest.param(lambda p: {**p, "state": p["state"] + "x" * 2000}, id="oversized"),
        pytest.param(lambda p: {**p, "state": p["state"][:-1] + "é"}, id="non-ascii"),
        pytest.param(lambda p: {**p, "state": "not.a.state"}, id="garbage"),
    ],
)
def test_bad_states_are_400_and_store_nothing(
    client, make_operator, emulator, store_engine, mangle
):
    params = approved_callback(client(make_operator()), emulator)
    answer = client(html=True).get(CALLBACK, params=mangle(params))
    assert answer.status_code == 400
    assert "Salesforce was not connected" in answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    assert _rows(store_engine) == (0, 0)


def test_expired_state_is_400_and_stores_nothing(
    client, make_operator, emulator, store_engine, clock
):
    params = approved_callback(client(make_operator()), emulator)
    clock.advance(601)
    answer = client(html=True).get(CALLBACK, params=params)
    assert answer.status_code == 400
    assert _rows(store_engine) == (0, 0)


def test_replayed_callback_is_400_and_changes_nothing(
    client, make_operator, emulator, store_engine
):
    browser = client(make_operator(), html=True)
    params = approved_callback(browser, emulator)
    assert browser.get(CALLBACK, params=params).status_code == 200
    with store_engine.connect() as conn:
        first = load_token_row(conn, "acme")
    replay = browser.get(CALLBACK, params=params)
    assert replay.status_code == 400
    assert "already used or has expired" in replay.text
    with store_engine.connect() as conn:
        assert load_token_row(conn, "acme") == first
        assert get_connector(conn, "acme").status == "connected"


def test_a_parameter_given_twice_is_400(client, make_operator, emulator, store_engine):
    params = approved_callback(client(make_operator()), emulator)
    query = "&".join(f"{k}={v}" for k, v in params.items()) + f"&state={params['state']}"
    answer = client(html=True).get(f"{CALLBACK}?{query}")
    assert answer.status_code == 400 and "twice" in answer.text
    assert _rows(store_engine) == (0, 0)


def test_denied_consent_is_shown_and_recorded_in_plain_words(
    logged_in, make_operator, emulator, store_engine
):
    emulator.control.configure(auto_approve=False)
    browser = logged_in(make_operator())
    params = approved_callback(browser, emulator, decision="deny")
    assert params["error"] == "access_denied"
    answer = browser.get(CALLBACK, params=params)
    assert answer.status_code == 403
    assert "Access was denied in Salesforce" in answer.text
    with store_engine.connect() as conn:
        connector = get_connector(conn, "acme")
    assert connector.status == "failed" and "Access was denied" in connector.status_detail
    page = browser.get("/connectors").text
    assert "Connection failed" in page and "Access was denied in Salesforce" in page
    assert _rows(store_engine) == (1, 0)


def test_authorize_redirect_carries_the_oauth_parameters(client, make_operator, emulator, flow):
    url = authorize_url(client(make_operator()))
    query = parse_qs(urlsplit(url).query)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [emulator.info["client_id"]]
    assert query["code_challenge_method"] == ["S256"]
    assert query["scope"] == ["api refresh_token"]
    assert query["redirect_uri"] == [flow.callback_url] == [CALLBACK_URL]
    assert query["state"][0] and query["code_challenge"][0]
