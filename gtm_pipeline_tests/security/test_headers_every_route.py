"""Security headers on every route of the app, read from its route table: for anonymous,
bearer and browser callers, on successes, refusals and errors alike. Every response carries the
strict CSP and the framing, sniffing and referrer headers; everything but the stylesheet is
`no-store` (the callback and login pages carry codes, states and CSRF tokens); every cookie set is
HttpOnly and SameSite=Lax (and Secure when the app serves over TLS, see
web/test_login_csrf.py::test_cookies_are_secure_by_default).

What other folders already cover is listed in the table of `security/__init__.py`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from gtm_pipeline.web.csrf import CSRF_FIELD
from gtm_pipeline.web.headers import CONTENT_SECURITY_POLICY
from gtm_pipeline.web.routes import STYLESHEET_CACHE
from gtm_pipeline_tests.security.attacks import attempt
from gtm_pipeline_tests.security.routes import all_routes, concrete
from gtm_pipeline_tests.support.web import csrf_from
from gtm_pipeline_tests.web.connecting import approved_callback


@pytest.fixture()
def database_url(sqlite_only: str) -> str:
    """SQLite only: headers are the web layer's, whatever the store."""
    return sqlite_only


def check_headers(answer, where: str) -> None:
    headers = answer.headers
    assert headers.get("Content-Security-Policy") == CONTENT_SECURITY_POLICY, where
    assert "unsafe-" not in CONTENT_SECURITY_POLICY
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("X-Frame-Options") == "DENY", where
    assert headers.get("Referrer-Policy") == "no-referrer", where
    stylesheet = urlsplit(answer.url).path == "/static/style.css" and answer.status_code == 200
    expected = STYLESHEET_CACHE if stylesheet else "no-store"
    assert headers.get("Cache-Control") == expected, where
    for cookie in answer.raw.headers.getlist("Set-Cookie"):
        lowered = cookie.lower()
        assert "httponly" in lowered and "samesite=lax" in lowered, (where, cookie)


def test_every_route_answers_with_the_security_headers(web, tenants, make_operator, emulator, flow):
    admin_token = make_operator()
    callers = {
        "anonymous": web.client(),
        "anonymous browser": web.client(html=True),
        "bearer": web.client(admin_token),
        "browser": web.login(admin_token),
    }
    csrf = csrf_from(callers["browser"].get("/connectors").text)
    routes = [r for r in all_routes(web.app) if r != ("POST", "/logout")] + [("POST", "/logout")]
    for method, path in routes:
        for name, client in callers.items():
            for tenant in ("acme", "nobody"):
                url = concrete(path, tenant)
                with attempt("security headers"):
                    answer = client.request(
                        method, url, params={"tenant": tenant}, data={CSRF_FIELD: csrf}
                    )
                    check_headers(answer, f"{name} {method} {url} -> {answer.status_code}")
    # The pages that carry secrets of the flow: a successful callback and a refused one.
    starter = web.login(admin_token)  # the browser that started it (it holds the cookie)
    for client, params in (
        (starter, approved_callback(starter, emulator)),
        (starter, {"state": "x"}),
    ):
        with attempt("security headers"):
            answer = client.get("/api/connectors/salesforce/callback", params=params)
            check_headers(answer, f"callback -> {answer.status_code}")
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"):
        with attempt("security headers"):
            answer = web.client().request(method, "/connectors")
            assert answer.status_code in (404, 405), method
            check_headers(answer, f"{method} /connectors")
