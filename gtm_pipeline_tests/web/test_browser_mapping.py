"""The mapping page in a real headless Chromium (Debian's, driven by Playwright).

The tenant is connected through the emulator first; the app runs from the environment, as
`gtm-pipeline web` would. Steps: log in, follow "Field mapping" from the connectors page, map
`title` to Title with `uppercase` and a custom field `region` to Region__c, save, see it saved,
and see it again after a reload; then write the tier to Notes__c in the "Scores written to
Salesforce" form and save that. A screenshot of each step goes to test-artifacts/browser/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from gtm_pipeline.config import Settings
from gtm_pipeline.sync.mapping import load_mappings
from gtm_pipeline.web.app import app_from_settings
from gtm_pipeline.web.serving import BackgroundServer
from gtm_pipeline.writeback.mapping import load_writeback_map
from gtm_pipeline_tests.browser import needs_chromium
from gtm_pipeline_tests.web.test_browser import ARTIFACTS
from gtm_pipeline_tests.web.test_browser import page as tab  # noqa: F401 - a fixture

pytestmark = needs_chromium


@pytest.fixture()
def app_url(connect_env) -> Iterator[str]:
    with BackgroundServer(app_from_settings(Settings.from_process())) as server:
        yield server.base_url


def _shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_map_a_field_in_a_real_browser(
    tab,  # noqa: F811 - the imported fixture
    app_url,
    connect_tenant,
    make_operator,
    store_engine: sa.Engine,
):
    assert connect_tenant("acme").ok
    token = make_operator("acme", label="acme ops")
    page = tab
    shots = []

    page.goto(f"{app_url}/login")
    page.fill("#token", token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{app_url}/connectors")
    page.locator('tr[data-tenant="acme"]').get_by_role("link", name="Field mapping").click()
    page.wait_for_url(f"{app_url}/connectors/acme/mapping")
    assert page.get_by_role("heading", name="Field mapping for acme").is_visible()
    title = page.locator('select[name="source.title"]')
    assert title.input_value() == "Title"
    shots.append(_shot(page, "mapping-01-defaults"))

    title.select_option("Title")
    page.select_option('select[name="transform.title"]', "uppercase")
    page.fill("#new_key", "region")
    page.select_option('select[name="new_source"]', "Region__c")
    shots.append(_shot(page, "mapping-02-edited"))
    page.get_by_role("button", name="Save mapping").click()
    assert page.get_by_role("status").filter(has_text="Mapping saved").is_visible()
    shots.append(_shot(page, "mapping-03-saved"))

    with store_engine.connect() as conn:
        stored = {m.target: m for m in load_mappings(conn, "acme", "persons")}
    assert (stored["title"].source, stored["title"].transform) == ("Title", "uppercase")
    assert stored["custom_fields.region"].source == "Region__c"

    page.goto(f"{app_url}/connectors/acme/mapping?entity=persons")
    assert page.locator('select[name="transform.title"]').input_value() == "uppercase"
    region = page.locator('select[name="source.custom_fields.region"]')
    assert region.input_value() == "Region__c"
    shots.append(_shot(page, "mapping-04-reloaded"))

    tier = page.locator('select[name="score.tier"]')
    assert tier.input_value() == "Tier__c"  # the default writeback field
    tier.select_option("Notes__c")
    page.get_by_role("button", name="Save score fields").click()
    assert page.get_by_role("status").filter(has_text="Writeback mapping saved").is_visible()
    assert page.locator('select[name="score.tier"]').input_value() == "Notes__c"
    shots.append(_shot(page, "mapping-05-writeback-saved"))
    with store_engine.connect() as conn:
        assert load_writeback_map(conn, "acme", "person")["tier"] == "Notes__c"

    assert all(shot.stat().st_size > 1000 for shot in shots)
