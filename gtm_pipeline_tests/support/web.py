"""The web tests' helpers: a client of the app, logging in, CSRF tokens, free ports, and the app
as `app_from_env` builds it on the emulator.

There is no httpx in the environment, so the app is served by uvicorn on a free loopback port
(about 50 ms) and driven with requests, like a real client.
"""

from __future__ import annotations

import re
import socket

import requests

from gtm_pipeline.config import Settings
from gtm_pipeline.connect.tokens import TenantClients
from gtm_pipeline.web.app import create_app

HTML = {"Accept": "text/html,application/xhtml+xml"}
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


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


def no_org(tenant_id: str):
    """The tenant client of an app whose test never reaches Salesforce."""
    raise AssertionError(f"this test's app reaches no Salesforce org (asked for {tenant_id})")


def app_on_emulator(engine, connect_flow, session_secret: str, settings, environ):
    """The app as `app_from_env` builds it: tenant clients on the emulator, plain-HTTP cookies."""

    def tenant_client(tenant_id: str):
        return TenantClients.from_settings(
            engine, Settings(environ), salesforce=settings
        ).for_tenant(tenant_id)

    return create_app(
        engine,
        connect_flow,
        secure_cookies=False,
        session_secret=session_secret,
        tenant_client=tenant_client,
    )
