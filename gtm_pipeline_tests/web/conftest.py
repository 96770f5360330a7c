"""Fixtures for the web app: the connect fixtures, an app served over HTTP, operators, logins.

The emulator, keys, store and `flow` come from `gtm_pipeline_tests/connect/conftest.py`
(imported here so both folders share one definition). `database_url` is narrowed to SQLite:
the web layer adds no SQL of its own beyond one read of `sync_state`, which
`test_overview_reads_sync_state_on_postgres` checks on PostgreSQL.

There is no httpx in the environment, so the app is served by uvicorn on a free loopback port
(about 50 ms) and driven with requests, like a real client.
"""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import Callable, Iterator

import pytest
import requests
import sqlalchemy as sa

from gtm_pipeline.connect.flow import ConnectFlow
from gtm_pipeline.connect.tokens import client_for_tenant
from gtm_pipeline.store.connections import create_operator, operator_token_hash
from gtm_pipeline.web.app import create_app
from gtm_pipeline.web.auth import new_operator_token
from gtm_pipeline.web.serving import BackgroundServer
from gtm_pipeline_tests.connect.conftest import (  # noqa: F401 - fixtures shared with connect/
    _system_ca_bundle_in_env,
    cipher,
    clock,
    connect_env,
    connect_org,
    connect_tenant,
    emulator,
    encryption_key,
    flow,
    oauth_client,
    sf_settings,
    signer,
    start_emulator,
    state_secret,
    store_engine,
    vault,
)

HTML = {"Accept": "text/html,application/xhtml+xml"}
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture()
def database_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture()
def session_secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture()
def web_url(store_engine: sa.Engine, flow: ConnectFlow, session_secret: str) -> Iterator[str]:  # noqa: F811
    """The app served on a free loopback port; its base URL."""
    app = create_app(store_engine, flow, secure_cookies=False, session_secret=session_secret)
    with BackgroundServer(app) as server:
        yield server.base_url


@pytest.fixture()
def make_operator(store_engine: sa.Engine) -> Callable[..., str]:  # noqa: F811
    """Create an operator credential (admin when tenant_id is None); return its token."""

    def make(tenant_id: str | None = None, label: str = "ops@example.com") -> str:
        token = new_operator_token()
        with store_engine.begin() as conn:
            create_operator(
                conn, token_hash=operator_token_hash(token), tenant_id=tenant_id, label=label
            )
        return token

    return make


class AppClient(requests.Session):
    """A client of the app: paths relative to its URL, a timeout, redirects not followed."""

    def __init__(self, base_url: str, *, token: str | None = None, html: bool = False) -> None:
        super().__init__()
        self.base_url = base_url
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"
        if html:
            self.headers.update(HTML)

    def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        kwargs.setdefault("timeout", 30)
        # Session.get sets allow_redirects=True itself; tests look at each redirect instead.
        kwargs["allow_redirects"] = kwargs.pop("follow", False)
        if url.startswith("/"):
            url = self.base_url + url
        return super().request(method, url, *args, **kwargs)


@pytest.fixture()
def client(web_url: str) -> Callable[..., AppClient]:
    """`client(token=None, html=False)`: an API client, or a browser-like one with html=True."""
    return lambda token=None, html=False: AppClient(web_url, token=token, html=html)


def free_loopback_port() -> int:
    """A port nothing listens on now, for a server whose URL must be known before it starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def csrf_from(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def login(base_url: str, token: str) -> AppClient:
    """A browser-like client logged in through the form; fails the test if login fails."""
    browser = AppClient(base_url, html=True)
    page = browser.get("/login")
    answer = browser.post("/login", data={"token": token, "csrf_token": csrf_from(page.text)})
    assert answer.status_code == 303, answer.text
    return browser


@pytest.fixture()
def logged_in(web_url: str) -> Callable[[str], AppClient]:
    return lambda token: login(web_url, token)


def app_on_emulator(engine, connect_flow, session_secret: str, settings, environ):
    """The app as `app_from_env` builds it: tenant clients on the emulator, plain-HTTP cookies."""

    def tenant_client(tenant_id: str):
        return client_for_tenant(engine, tenant_id, settings=settings, environ=environ)

    return create_app(
        engine,
        connect_flow,
        secure_cookies=False,
        session_secret=session_secret,
        tenant_client=tenant_client,
    )
