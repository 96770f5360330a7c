"""The Host header: foreign hosts are refused on every route (DNS rebinding, Host reflection),
and no path is redirected for a slash, so no Host value ever ends up in a Location header."""

from __future__ import annotations

import pytest
import requests

from gtm_pipeline.config import Settings
from gtm_pipeline.web.app import app_from_settings
from gtm_pipeline.web.serving import BackgroundServer
from gtm_pipeline_tests.security.attacks import attempt
from gtm_pipeline_tests.security.routes import all_routes, concrete

FOREIGN_HOSTS = [
    "attacker.example",
    "127.0.0.1.nip.io",
    "localhost.attacker.example",
    "127.0.0.1@attacker.example",
    "",
]


@pytest.fixture()
def database_url(sqlite_only: str) -> str:
    """SQLite only: the Host check is the web layer's."""
    return sqlite_only


def _get(base_url: str, method: str, path: str, host: str) -> requests.Response:
    return requests.request(
        method, base_url + path, headers={"Host": host, "Accept": "text/html"},
        allow_redirects=False, timeout=30,
    )  # fmt: skip


def test_a_foreign_host_header_is_refused_on_every_route(web):
    port = web.base_url.rsplit(":", 1)[1]
    for method, path in all_routes(web.app):
        for host in FOREIGN_HOSTS:
            with attempt("host header"):
                answer = _get(web.base_url, method, concrete(path), f"{host}:{port}")
                assert answer.status_code == 400, (method, path, host, answer.status_code)
                assert "location" not in answer.headers


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "LOCALHOST"])
def test_loopback_host_headers_are_served(web, host):
    port = web.base_url.rsplit(":", 1)[1]
    assert _get(web.base_url, "GET", "/login", f"{host}:{port}").status_code == 200


def test_a_trailing_slash_is_a_404_never_a_redirect(web):
    paths = {concrete(path) for method, path in all_routes(web.app) if method == "GET"}
    for path in sorted(paths):
        twin = path[:-1] if path.endswith("/") and path != "/" else path + "/"
        with attempt("host header"):
            answer = _get(web.base_url, "GET", twin, "127.0.0.1")
            assert answer.status_code == 404, (twin, answer.status_code)
            assert "location" not in answer.headers


def test_the_callbacks_host_is_served_and_others_refused(connect_env, monkeypatch):
    monkeypatch.setenv("SALESFORCE_CALLBACK_URL", "https://connect.example.com/api/cb")
    with BackgroundServer(app_from_settings(Settings.from_process())) as server:
        assert _get(server.base_url, "GET", "/login", "connect.example.com").status_code == 200
        with attempt("host header"):
            assert _get(server.base_url, "GET", "/login", "example.com").status_code == 400
