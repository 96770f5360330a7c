"""Path traversal and oversized input to the web app: refused cleanly (4xx), never a 500,
nothing stored, and nothing outside the app's own pages served.
"""

from __future__ import annotations

import pytest
import requests

from gtm_pipeline_tests.security.attacks import attempt
from gtm_pipeline_tests.security.conftest import snapshot
from gtm_pipeline_tests.web.conftest import csrf_from


@pytest.fixture()
def database_url(sqlite_only: str) -> str:
    """SQLite only: these attacks end in the web layer, which adds no SQL of its own."""
    return sqlite_only


TRAVERSALS = [
    "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2f..%2fetc%2fpasswd",
    "/static/style.css/../../app.py",
    "/static/%2e%2e%2fapp.py",
    "/static/..\\..\\app.py",
    "/static/style.css%00.py",
    "/static/templates/login.html",
    "/connectors/..%2f..%2fetc%2fpasswd/mapping",
    "/connectors/%2e%2e/mapping",
    "/connectors/../connectors/acme/mapping",
    "/connectors/acme%2f..%2fglobex/mapping",
    "/api/connectors/..%2f..%2fetc%2fpasswd",
    "/api/connectors/salesforce/authorize?tenant=..%2f..%2fglobex",
    "/api/connectors/salesforce/authorize?tenant=acme%00globex",
    "//etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
]

MIB = 1024 * 1024
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _no_leak(answer: requests.Response) -> None:
    assert "root:" not in answer.text and "import " not in answer.text
    assert "Traceback" not in answer.text


def test_path_traversal_serves_nothing_but_the_apps_pages(
    web, tenants, make_operator, store_engine
):
    admin = web.login(make_operator("acme"))
    before = snapshot(store_engine)
    for path in TRAVERSALS:
        with attempt("path traversal"):
            # requests would normalise dots away; a prepared request keeps the path as written.
            prepared = requests.Request("GET", web.base_url + path).prepare()
            prepared.url = web.base_url + path
            prepared.prepare_cookies(admin.cookies)
            prepared.headers.update({"Accept": "text/html"})
            answer = admin.send(prepared, allow_redirects=False, timeout=30)
            assert 400 <= answer.status_code < 500, (path, answer.status_code)
            _no_leak(answer)
            assert "globex" not in answer.text
    with attempt("path traversal"):
        assert snapshot(store_engine) == before


def _post(web, path: str, body: bytes, **headers: str) -> requests.Response:
    return requests.post(
        web.base_url + path, data=body, headers={**FORM, **headers}, timeout=120,
        allow_redirects=False,
    )  # fmt: skip


def test_oversized_bodies_and_fields_are_refused(web, tenants, make_operator, store_engine):
    admin = web.login(make_operator())
    csrf = csrf_of(admin)
    cookie = "; ".join(f"{k}={v}" for k, v in admin.cookies.items())
    before = snapshot(store_engine)
    cases = {
        "one 2 MiB field (login)": ("/login", b"token=" + b"a" * 2 * MIB),
        "one 2 MiB field (mapping)": (
            "/connectors/acme/mapping?entity=persons",
            f"csrf_token={csrf}&source.title=".encode() + b"T" * 2 * MIB,
        ),
        "5000 fields (login)": ("/login", "&".join(f"f{i}=x" for i in range(5000)).encode()),
        "5000 fields (mapping)": (
            "/connectors/acme/mapping?entity=persons",
            f"csrf_token={csrf}&".encode() + "&".join(f"f{i}=x" for i in range(5000)).encode(),
        ),
        "5000 fields (add tenant)": (
            "/connectors/tenants",
            f"csrf_token={csrf}&".encode() + "&".join(f"f{i}=x" for i in range(5000)).encode(),
        ),
        "a 2 MiB field name": ("/connectors/acme/disconnect", b"a" * 2 * MIB + b"=1"),
    }
    for name, (path, body) in cases.items():
        with attempt("oversized input"):
            answer = _post(web, path, body, Cookie=cookie, Accept="text/html")
            assert 400 <= answer.status_code < 500, (name, answer.status_code)
            _no_leak(answer)
            assert snapshot(store_engine) == before, name
    with attempt("oversized input"):
        files = {"token": ("token.txt", b"x" * 100)}
        answer = requests.post(web.base_url + "/login", files=files, timeout=30)
        assert answer.status_code == 400  # no file uploads anywhere
    assert admin.get("/connectors").status_code == 200  # the server is still fine


def _refused_by_the_server(send) -> None:
    """A request the server must refuse: a 4xx, or the connection closed on it."""
    try:
        answer = send()
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
        return
    assert 400 <= answer.status_code < 500, answer.status_code


def test_oversized_heads_are_refused_before_the_app(web, tenants, make_operator, store_engine):
    before = snapshot(store_engine)
    url = web.base_url + "/login"
    sends = {
        "a 1 MiB header": lambda: requests.get(url, headers={"X-Big": "a" * MIB}, timeout=60),
        "a 16 MiB header": lambda: requests.get(url, headers={"X-Big": "a" * 16 * MIB}, timeout=60),
        "10000 headers": lambda: requests.get(
            url, headers={f"X-H{i}": "v" * 100 for i in range(10_000)}, timeout=60
        ),
        "a 1 MiB query string": lambda: requests.get(url + "?q=" + "a" * MIB, timeout=60),
        "a 1 MiB cookie": lambda: requests.get(
            url, headers={"Cookie": "gtm_session=" + "a" * MIB}, timeout=60
        ),
        "a 1 MiB path": lambda: requests.get(web.base_url + "/connectors/" + "a" * MIB, timeout=60),
    }
    for name, send in sends.items():
        with attempt("oversized input"):
            _refused_by_the_server(send)
            assert snapshot(store_engine) == before, name
    operator = make_operator()
    assert web.login(operator).get("/connectors").status_code == 200  # still serving


def test_long_but_legal_values_are_refused_in_plain_words(
    web, tenants, make_operator, store_engine
):
    admin = web.login(make_operator())
    csrf = csrf_of(admin)
    before = snapshot(store_engine)
    attempts = [
        admin.get("/connectors", headers={"Cookie": "gtm_session=" + "a" * 4000}),
        admin.get("/api/connectors/" + "a" * 5000),
        admin.get("/connectors/" + "a" * 5000 + "/mapping"),
        admin.get("/api/connectors/salesforce/authorize", params={"tenant": "a" * 5000}),
        admin.post("/connectors/tenants", data={"csrf_token": csrf, "tenant": "a" * 5000}),
        admin.post("/login", data={"csrf_token": csrf, "token": "gtmop_" + "a" * 5000}),
        admin.get("/api/connectors/salesforce/callback", params={"state": "a" * 5000, "code": "c"}),
        requests.get(
            web.base_url + "/api/connectors",
            headers={"Authorization": "Bearer " + "a" * 5000},
            timeout=30,
        ),
    ]
    for answer in attempts:
        with attempt("oversized input"):
            assert answer.status_code in (303, 400, 401, 403, 404), answer.status_code
            _no_leak(answer)
    with attempt("oversized input"):
        assert snapshot(store_engine) == before


def csrf_of(browser) -> str:
    return csrf_from(browser.get("/connectors").text)
