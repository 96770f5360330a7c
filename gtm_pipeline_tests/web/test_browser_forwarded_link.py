"""The forwarded-link attack of issue 19 in a real headless Chromium, end to end over HTTPS.

Operator A (scoped to tenant acme) clicks Connect Salesforce, and instead of approving, copies
the genuine authorize link and hands it to B, a user of another org, in another browser (another
Playwright context: its own cookies). B approves. Salesforce sends B's browser back to the app's
callback with a valid, fresh state for acme and a code for B's org: the app must refuse it and
connect nothing. Then A, in A's own browser, starts again and connects: the refusal was about
the browser, and A's cookies do come back over the cross-site redirect from Salesforce.

The app serves TLS (its callback URL is https, so its cookies are Secure and `__Host-` named),
and the emulator is reached as `localhost` while the app is `127.0.0.1`: two different sites, so
the return from "Salesforce" is a cross-site navigation, as with the real login.salesforce.com.
Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from gtm_pipeline.config import Settings
from gtm_pipeline.emulator.tls import create_tls_files
from gtm_pipeline.store.connections import get_connector, load_token_row
from gtm_pipeline.web.app import app_from_settings
from gtm_pipeline.web.serving import BackgroundServer
from gtm_pipeline_tests.browser import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from gtm_pipeline_tests.support.web import free_loopback_port
from gtm_pipeline_tests.web.test_browser import ARTIFACTS

pytestmark = needs_chromium

CALLBACK_PATH = "/api/connectors/salesforce/callback"


@pytest.fixture()
def emulator(start_emulator):
    """The emulator with its consent page: B clicks Allow, as a person approving would."""
    return start_emulator(auto_approve=False)


@pytest.fixture()
def login_url(emulator, connect_env, monkeypatch) -> str:
    """The emulator under another site's name (`localhost`; its certificate covers it)."""
    url = emulator.info["login_url"].replace("://127.0.0.1:", "://localhost:")
    monkeypatch.setenv("SALESFORCE_LOGIN_URL", url)
    return url


@pytest.fixture()
def app_url(login_url, connect_env, monkeypatch, tmp_path) -> Iterator[str]:
    """The app as `gtm-pipeline web` builds it, served over HTTPS on a free loopback port."""
    port = free_loopback_port()
    base = f"https://127.0.0.1:{port}"
    monkeypatch.setenv("SALESFORCE_CALLBACK_URL", f"{base}{CALLBACK_PATH}")
    tls = create_tls_files(tmp_path / "app-tls")
    with BackgroundServer(
        app_from_settings(Settings.from_process()),
        port=port,
        tls=(str(tls.certfile), str(tls.keyfile)),
    ):
        yield base


@pytest.fixture()
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _tab(browser):
    """A tab in a fresh context: its own cookie jar, as another person's browser has."""
    # The app's and the emulator's certificates come from throw-away CAs.
    tab = browser.new_context(ignore_https_errors=True).new_page()
    tab.set_default_timeout(20_000)
    return tab


def _log_in(tab, app_url: str, token: str) -> None:
    tab.goto(f"{app_url}/login")
    tab.fill("#token", token)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url(f"{app_url}/connectors")


def _click_connect(tab, login_url: str) -> None:
    tab.locator('tr[data-tenant="acme"]').get_by_role("button", name="Connect Salesforce").click()
    tab.wait_for_url(f"{login_url}/services/oauth2/authorize?**")


def _allow(tab, app_url: str) -> None:
    tab.get_by_role("button", name="Allow").click()
    tab.wait_for_url(f"{app_url}{CALLBACK_PATH}?**")


def _shot(tab, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path


def _acme(engine: sa.Engine):
    with engine.connect() as conn:
        return get_connector(conn, "acme"), load_token_row(conn, "acme")


@pytest.mark.parametrize("victim_logged_in", [False, True], ids=["stranger", "other-operator"])
def test_a_forwarded_authorize_link_is_refused_in_the_victims_browser(
    browser, app_url, login_url, emulator, make_operator, store_engine, victim_logged_in
):
    a_tab, b_tab = _tab(browser), _tab(browser)
    _log_in(a_tab, app_url, make_operator("acme", label="acme ops"))
    if victim_logged_in:  # B also uses the app, for another tenant
        _log_in(b_tab, app_url, make_operator("globex", label="globex ops"))
    session_cookie = {c["name"]: c for c in a_tab.context.cookies()}["__Host-gtm_session"]
    assert session_cookie["secure"] and session_cookie["httpOnly"]
    assert session_cookie["sameSite"] == "Lax"

    _click_connect(a_tab, login_url)
    forwarded = a_tab.url  # A copies the genuine link instead of approving
    b_tab.goto(forwarded)
    _allow(b_tab, app_url)

    assert b_tab.get_by_role("heading", name="Salesforce was not connected").is_visible()
    assert "started in another browser or by another operator" in b_tab.inner_text("main")
    _shot(b_tab, f"forwarded-link-refused-{'operator' if victim_logged_in else 'stranger'}")
    assert _acme(store_engine) == (None, None)  # acme is not linked to B's org, nor marked

    # A's own consent page now leads nowhere: B's refused callback spent the state.
    _allow(a_tab, app_url)
    assert "already used or has expired" in a_tab.inner_text("main")
    assert _acme(store_engine) == (None, None)

    # Started again and approved in A's own browser, the connection goes through.
    a_tab.goto(f"{app_url}/connectors")
    _click_connect(a_tab, login_url)
    _allow(a_tab, app_url)
    assert a_tab.get_by_role("heading", name="Salesforce connected").is_visible()
    connector, tokens = _acme(store_engine)
    assert connector.status == "connected" and tokens is not None
    assert "__Host-gtm_oauth_binding" not in {c["name"] for c in a_tab.context.cookies()}
