"""CSRF on every state-changing route, found from the app's own route table.

Each non-GET route is sent, from a logged-in browser session, a request that would succeed with
the session's CSRF token, but without it, with a wrong one, with another session's, with the
anonymous pre-login one, and with the right one in the query string or a header instead of the
form. Every one must be 403 and change nothing (the whole store compared, and the session still
alive). Then the same request with the right token must succeed, so the 403s are CSRF's doing.
A new route that takes POST without checking the token fails this test; a new route the table
below does not know how to drive fails it too, asking for its entry.

Bearer-token calls need no CSRF token by design: a third-party page cannot attach an
Authorization header. The session cookie is SameSite=Lax (see web/test_login_csrf.py), which
keeps it off cross-site POSTs too, but the token is what this test proves.
"""

from __future__ import annotations

import secrets

import pytest

from gtm_pipeline.store.connections import get_connector
from gtm_pipeline.web.csrf import CSRF_FIELD
from gtm_pipeline_tests.security.attacks import attempt
from gtm_pipeline_tests.security.routes import TENANT, concrete, state_changing_routes, valid_forms
from gtm_pipeline_tests.support.security import snapshot
from gtm_pipeline_tests.support.web import csrf_from


@pytest.fixture()
def database_url(sqlite_only: str) -> str:
    """SQLite only: these attacks end in the web layer, which adds no SQL of its own."""
    return sqlite_only


def forgeries(browser_token: str, other_token: str, anonymous_token: str):
    """(name, extra query, extra headers, form token or None) of each forged request."""
    flipped = browser_token[:-1] + ("A" if browser_token[-1] != "A" else "B")
    return [
        ("missing", "", {}, None),
        ("empty", "", {}, ""),
        ("random", "", {}, secrets.token_urlsafe(32)),
        ("one character off", "", {}, flipped),
        ("truncated", "", {}, browser_token[:-1]),
        ("padded", "", {}, browser_token + "x"),
        ("another session's", "", {}, other_token),
        ("the anonymous session's", "", {}, anonymous_token),
        ("oversized", "", {}, "A" * 5000),
        ("non-ASCII", "", {}, browser_token[:-1] + "é"),
        ("in the query string", f"{CSRF_FIELD}={browser_token}", {}, None),
        ("in a header", "", {"X-CSRF-Token": browser_token}, None),
    ]


def _url(path: str, query: str, extra: str) -> str:
    joined = "&".join(p for p in (query.lstrip("?"), extra) if p)
    return concrete(path) + (f"?{joined}" if joined else "")


def test_every_state_changing_route_refuses_a_missing_or_wrong_csrf_token(
    web, tenants, make_operator, store_engine
):
    admin_token = make_operator()
    anonymous = web.client(html=True)
    anonymous_token = csrf_from(anonymous.get("/login").text)
    browser = web.login(admin_token)
    other = web.login(admin_token)  # the same operator in another browser
    browser_token = csrf_from(browser.get("/connectors").text)
    other_token = csrf_from(other.get("/connectors").text)
    assert len({browser_token, other_token, anonymous_token}) == 3

    routes = state_changing_routes(web.app)
    assert ("POST", "/connectors/{tenant}/mapping") in routes  # the table is really read
    assert ("POST", "/api/connectors/salesforce/authorize") in routes  # starting a connection
    known = valid_forms(browser, admin_token)
    unknown = [r for r in routes if r not in known]
    assert not unknown, f"routes this test cannot drive yet; add them to valid_forms: {unknown}"

    before = snapshot(store_engine)
    for method, path in routes:
        query, form = known[(method, path)]
        for name, extra_query, headers, token in forgeries(
            browser_token, other_token, anonymous_token
        ):
            data = dict(form) if token is None else {**form, CSRF_FIELD: token}
            with attempt("csrf"):
                answer = browser.request(
                    method, _url(path, query, extra_query), data=data, headers=headers
                )
                assert answer.status_code == 403, f"{method} {path} with {name} token"
                assert snapshot(store_engine) == before, f"{method} {path} with {name} token"
                assert browser.get("/connectors").status_code == 200  # still logged in

    # The same requests with the right token work: the refusals above were CSRF's doing.
    # Disconnecting ends the mapping page, logging in rotates the token, logging out ends all.
    last = {"/connectors/{tenant}/disconnect": 1, "/login": 2, "/logout": 3}
    ordered = sorted(routes, key=lambda r: last.get(r[1], 0))
    for method, path in ordered:
        query, form = known[(method, path)]
        data = {**form, CSRF_FIELD: browser_token}
        answer = browser.request(method, _url(path, query, ""), data=data)
        assert answer.status_code in (200, 303), f"{method} {path}: {answer.status_code}"
        if path == "/login":
            browser_token = csrf_from(browser.get("/connectors").text)  # rotated
    with store_engine.connect() as conn:
        assert get_connector(conn, TENANT).status == "disconnected"
    assert snapshot(store_engine) != before
