"""The connect flow through the app: authorize → Salesforce → callback → connectors page →
disconnect, the callback's refusals (400, nothing stored) and a denied consent in plain words."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from gtm_pipeline.store.connections import get_connector, load_token_row
from gtm_pipeline.store.tables import connector_tokens, connectors
from gtm_pipeline_tests.connect.conftest import follow_authorize
from gtm_pipeline_tests.web.conftest import csrf_from

CALLBACK = "/api/connectors/salesforce/callback"


def _authorize_url(api, tenant: str = "acme") -> str:
    answer = api.get("/api/connectors/salesforce/authorize", params={"tenant": tenant})
    assert answer.status_code == 302
    return answer.headers["location"]


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
    authorize = browser.get(added.headers["location"])
    assert authorize.status_code == 302
    params = follow_authorize(emulator, authorize.headers["location"])

    done = browser.get(CALLBACK, params=params)
    assert done.status_code == 200
    assert "Salesforce connected" in done.text and "Connected: tenant acme" in done.text
    assert done.headers["Cache-Control"] == "no-store"
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


def test_callback_needs_no_operator_credential(client, make_operator, emulator):
    params = follow_authorize(emulator, _authorize_url(client(make_operator())))
    stranger = client(html=True)  # the browser coming back from Salesforce, no session
    assert stranger.get(CALLBACK, params=params).status_code == 200


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
    params = follow_authorize(emulator, _authorize_url(client(make_operator())))
    answer = client(html=True).get(CALLBACK, params=mangle(params))
    assert answer.status_code == 400
    assert "Salesforce was not connected" in answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    assert _rows(store_engine) == (0, 0)


def test_expired_state_is_400_and_stores_nothing(
    client, make_operator, emulator, store_engine, clock
):
    params = follow_authorize(emulator, _authorize_url(client(make_operator())))
    clock.advance(601)
    answer = client(html=True).get(CALLBACK, params=params)
    assert answer.status_code == 400
    assert _rows(store_engine) == (0, 0)


def test_replayed_callback_is_400_and_changes_nothing(
    client, make_operator, emulator, store_engine
):
    params = follow_authorize(emulator, _authorize_url(client(make_operator())))
    browser = client(html=True)
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
    params = follow_authorize(emulator, _authorize_url(client(make_operator())))
    query = "&".join(f"{k}={v}" for k, v in params.items()) + f"&state={params['state']}"
    answer = client(html=True).get(f"{CALLBACK}?{query}")
    assert answer.status_code == 400 and "twice" in answer.text
    assert _rows(store_engine) == (0, 0)


def test_denied_consent_is_shown_and_recorded_in_plain_words(
    logged_in, make_operator, emulator, store_engine
):
    emulator.control.configure(auto_approve=False)
    browser = logged_in(make_operator())
    location = browser.get("/api/connectors/salesforce/authorize?tenant=acme").headers["location"]
    params = follow_authorize(emulator, location, decision="deny")
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
    url = _authorize_url(client(make_operator()))
    query = parse_qs(urlsplit(url).query)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [emulator.info["client_id"]]
    assert query["code_challenge_method"] == ["S256"]
    assert query["scope"] == ["api refresh_token"]
    assert query["redirect_uri"] == [flow.callback_url]
    assert query["state"][0] and query["code_challenge"][0]
