"""The connectors page in a real headless Chromium (Debian's, driven by Playwright).

The emulator shows its consent page (no auto-approve); the app runs from the environment, as
`gtm-pipeline web` would, on a free loopback port that SALESFORCE_CALLBACK_URL points at.
Steps: log in, click "Connect Salesforce", click Allow, land back connected, see the tenant
connected on /connectors, then Disconnect. A screenshot of each step goes to
test-artifacts/browser/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from gtm_pipeline.config import Settings
from gtm_pipeline.store.connections import get_connector, load_token_row
from gtm_pipeline.web.app import app_from_settings
from gtm_pipeline.web.serving import BackgroundServer
from gtm_pipeline_tests.browser import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from gtm_pipeline_tests.support.web import free_loopback_port

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"

pytestmark = needs_chromium


@pytest.fixture()
def emulator(start_emulator):
    """The emulator with its consent page, as a person connecting an org sees it."""
    return start_emulator(auto_approve=False)


@pytest.fixture()
def app_url(connect_env, monkeypatch) -> Iterator[str]:
    port = free_loopback_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("SALESFORCE_CALLBACK_URL", f"{base}/api/connectors/salesforce/callback")
    with BackgroundServer(app_from_settings(Settings.from_process()), port=port):
        yield base


@pytest.fixture()
def page():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # The emulator's certificate comes from its own throw-away CA.
            context = browser.new_context(ignore_https_errors=True)
            tab = context.new_page()
            tab.set_default_timeout(20_000)
            yield tab
        finally:
            browser.close()


def _shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_connect_salesforce_in_a_real_browser(
    page, app_url, emulator, make_operator, store_engine: sa.Engine
):
    token = make_operator("acme", label="acme ops")
    shots = []

    page.goto(f"{app_url}/connectors")
    assert page.url == f"{app_url}/login"
    page.fill("#token", token)
    shots.append(_shot(page, "01-login"))
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{app_url}/connectors")
    row = page.locator('tr[data-tenant="acme"]')
    assert "Not connected yet" in row.inner_text()
    shots.append(_shot(page, "02-connectors-before"))

    row.get_by_role("button", name="Connect Salesforce").click()
    page.wait_for_url(f"{emulator.info['login_url']}/services/oauth2/authorize?**")
    assert page.get_by_role("heading", name="Allow access?").is_visible()
    shots.append(_shot(page, "03-salesforce-consent"))

    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{app_url}/api/connectors/salesforce/callback?**")
    assert page.get_by_role("heading", name="Salesforce connected").is_visible()
    assert "Connected: tenant acme" in page.inner_text("main")
    shots.append(_shot(page, "04-callback-connected"))

    page.goto(f"{app_url}/connectors")
    row = page.locator('tr[data-tenant="acme"]')
    assert "Connected" in row.locator(".status").inner_text()
    assert emulator.info["org_id"] in row.inner_text()
    shots.append(_shot(page, "05-connectors-connected"))
    with store_engine.connect() as conn:
        assert get_connector(conn, "acme").status == "connected"
        assert load_token_row(conn, "acme") is not None

    row.get_by_role("button", name="Disconnect").click()
    assert page.get_by_role("heading", name="Disconnected").is_visible()
    shots.append(_shot(page, "06-disconnected"))
    with store_engine.connect() as conn:
        assert get_connector(conn, "acme").status == "disconnected"
        assert load_token_row(conn, "acme") is None

    assert all(shot.stat().st_size > 1000 for shot in shots)
