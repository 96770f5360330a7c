"""The field-mapping page: who may open and save it, what it offers (the org's own fields, from
a cached describe), and that a save is validated whole before anything is stored.

The tenant is connected through the emulator, so the fields on the page are the emulated org's
describe, read over HTTPS with the tenant's stored tokens, like a deployment would.
"""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa

from gtm_pipeline.config import SalesforceSettings
from gtm_pipeline.store.connections import set_connector_status
from gtm_pipeline.store.tables import field_mappings
from gtm_pipeline.sync.mapping import load_mappings
from gtm_pipeline.web.serving import BackgroundServer
from gtm_pipeline_tests.support.web import AppClient, app_on_emulator, login

PERSONS = "/connectors/acme/mapping?entity=persons"


class FormState(HTMLParser):
    """One form of the page (the one posting to `action_path`) as a browser would submit it,
    plus each select's options."""

    def __init__(self, action_path: str) -> None:
        super().__init__()
        self.action_path = action_path
        self.values: dict[str, str] = {}
        self.options: dict[str, list[str]] = {}
        self._select: str | None = None
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        name = a.get("name")
        if tag == "form":
            path = (a.get("action") or "").partition("?")[0].partition("#")[0]
            self._inside = path.endswith(self.action_path)
        elif not self._inside:
            return
        elif tag == "select" and name:
            self._select = name
            self.options[name] = []
        elif tag == "option" and self._select is not None:
            value = a.get("value") or ""
            self.options[self._select].append(value)
            if "selected" in a or self._select not in self.values:
                self.values[self._select] = value
        elif tag == "input" and name:
            if a.get("type") != "checkbox":
                self.values[name] = a.get("value") or ""
            elif "checked" in a:
                self.values[name] = a.get("value") or "on"

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "form":
            self._inside = False


def form_state(html: str, action_path: str = "/mapping") -> FormState:
    """The field mapping form; pass `action_path` for another form of the page."""
    state = FormState(action_path)
    state.feed(html)
    return state


@pytest.fixture()
def app_url(
    store_engine: sa.Engine,
    flow,
    session_secret: str,
    sf_settings: SalesforceSettings,
    connect_env: dict[str, str],
) -> Iterator[str]:
    """The app with a tenant-client factory on the emulator, as `app_from_env` would build it."""

    app = app_on_emulator(store_engine, flow, session_secret, sf_settings, connect_env)
    with BackgroundServer(app) as server:
        yield server.base_url


@pytest.fixture()
def acme(connect_tenant) -> str:
    outcome = connect_tenant("acme")
    assert outcome.ok, outcome.message
    return "acme"


@pytest.fixture()
def admin(app_url: str, make_operator) -> AppClient:
    return login(app_url, make_operator())


def _stored(engine: sa.Engine) -> list[sa.Row]:
    """Every stored mapping row, of any tenant."""
    with engine.connect() as conn:
        query = sa.select(field_mappings).order_by(field_mappings.c.target_field)
        return list(conn.execute(query))


def _describes(emulator) -> int:
    return emulator.control.stats()["calls"].get("describe", 0)


def test_page_offers_the_orgs_fields_with_the_current_mapping_selected(admin, acme, emulator):
    page = admin.get(PERSONS)
    assert page.status_code == 200
    state = form_state(page.text)
    titles = state.options["source.title"]
    assert {"Title", "Email", "Region__c", "Notes__c"} <= set(titles)
    assert "" not in titles  # a column with a default is always mapped
    assert "" in state.options["new_source"]  # "(not mapped)"
    assert titles.index("Title") < titles.index("Region__c")  # standard before custom
    # The defaults apply until the tenant saves its own mapping.
    assert state.values["source.title"] == "Title"
    assert state.values["source.email"] == "Email"
    assert state.values["transform.email"] == "lowercase"
    assert {"none", "trim", "lowercase", "uppercase"} <= set(state.options["transform.title"])
    assert "source.external_id" not in state.values  # the key is not editable


def test_save_then_reload_shows_the_saved_mapping(admin, acme, store_engine):
    state = form_state(admin.get(PERSONS).text)
    form = {
        **state.values,
        "source.title": "Title",
        "transform.title": "uppercase",
        "new_key": "region",
        "new_source": "Region__c",
        "new_transform": "trim",
    }
    saved = admin.post(PERSONS, data=form)
    assert saved.status_code == 200, saved.text
    assert "Mapping saved" in saved.text

    with store_engine.connect() as conn:
        stored = {m.target: m for m in load_mappings(conn, "acme", "persons")}
    assert (stored["title"].source, stored["title"].transform) == ("Title", "uppercase")
    region = stored["custom_fields.region"]
    assert (region.source, region.transform) == ("Region__c", "trim")

    again = form_state(admin.get(PERSONS).text)
    assert again.values["source.title"] == "Title"
    assert again.values["transform.title"] == "uppercase"
    assert again.values["source.custom_fields.region"] == "Region__c"
    assert again.values["transform.custom_fields.region"] == "trim"


def test_a_custom_field_can_be_unmapped_again(admin, acme, store_engine):
    state = form_state(admin.get(PERSONS).text)
    added = {**state.values, "new_key": "region", "new_source": "Region__c"}
    assert admin.post(PERSONS, data=added).status_code == 200
    state = form_state(admin.get(PERSONS).text)
    assert state.values["source.custom_fields.region"] == "Region__c"
    assert admin.post(PERSONS, data={**state.values, "source.custom_fields.region": ""}).ok
    assert "source.custom_fields.region" not in form_state(admin.get(PERSONS).text).values
    assert _stored(store_engine) == []


def test_a_column_with_a_default_cannot_be_left_unmapped(admin, acme, store_engine):
    state = form_state(admin.get(PERSONS).text)
    assert "" not in state.options["source.phone"]  # not offered...
    answer = admin.post(PERSONS, data={**state.values, "source.phone": ""})
    assert answer.status_code == 400  # ...and refused when sent anyway
    assert "phone cannot be left unmapped" in answer.text
    assert _stored(store_engine) == []


def test_only_changes_from_the_defaults_are_stored(admin, acme, store_engine):
    state = form_state(admin.get(PERSONS).text)
    assert admin.post(PERSONS, data=state.values).status_code == 200
    assert _stored(store_engine) == []
    changed = {**state.values, "source.first_name": "Name", "required.first_name": "1"}
    assert admin.post(PERSONS, data=changed).status_code == 200
    rows = [(r.target_field, r.source_path, r.transform, r.required) for r in _stored(store_engine)]
    assert rows == [("first_name", "Name", "none", True)]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        pytest.param(
            "source.title",
            "No_Such_Field__c",
            "field &#39;No_Such_Field__c&#39; does not exist",
            id="unknown-field",
        ),
        pytest.param(
            "source.title",
            "Account.No_Such_Field__c",
            "field &#39;No_Such_Field__c&#39; does not exist",
            id="unknown-related-field",
        ),
        pytest.param(
            "source.title",
            "Title FROM Contact WHERE Id != null --",
            "is not a Salesforce field path",
            id="soql-clause",
        ),
        pytest.param(
            "source.title",
            "Title, (SELECT Id FROM Account)",
            "is not a Salesforce field path",
            id="subquery",
        ),
        pytest.param(
            "source.title", "Title'; DELETE", "is not a Salesforce field path", id="quote"
        ),
        pytest.param("transform.title", "eval", "unknown transform", id="unknown-transform"),
        pytest.param("source.no_such_column", "Title", "unknown target", id="unknown-target"),
    ],
)
def test_an_invalid_mapping_is_refused_and_nothing_stored(
    admin, acme, store_engine, field, value, reason
):
    state = form_state(admin.get(PERSONS).text)
    good = {**state.values, "transform.title": "uppercase"}  # a valid change riding along
    answer = admin.post(PERSONS, data={**good, field: value})
    assert answer.status_code == 400
    assert "The mapping was not saved" in answer.text
    assert reason in answer.text
    assert "Mapping saved" not in answer.text
    assert _stored(store_engine) == []
    # The page shows what was submitted, so the operator can fix it.
    shown = form_state(answer.text).values
    if field != "transform.title":
        assert shown["transform.title"] == "uppercase"
    assert shown[field] == value


def test_a_custom_key_that_is_not_an_identifier_is_refused(admin, acme, store_engine):
    state = form_state(admin.get(PERSONS).text)
    answer = admin.post(
        PERSONS, data={**state.values, "new_key": "x') OR 1=1", "new_source": "Region__c"}
    )
    assert answer.status_code == 400
    assert _stored(store_engine) == []


def test_a_custom_row_needs_both_key_and_field(admin, acme, store_engine):
    state = form_state(admin.get(PERSONS).text)
    answer = admin.post(PERSONS, data={**state.values, "new_key": "region"})
    assert answer.status_code == 400
    assert "both a key and the Salesforce field" in answer.text
    assert _stored(store_engine) == []


def test_fields_the_page_never_shows_are_refused(admin, acme, store_engine):
    state = form_state(admin.get(PERSONS).text)
    answer = admin.post(PERSONS, data={**state.values, "direction": "writeback"})
    assert answer.status_code == 400
    assert "does not have" in answer.text
    assert _stored(store_engine) == []


def test_everything_shown_is_escaped(admin, acme, store_engine):
    state = form_state(admin.get(PERSONS).text)
    evil = "<script>alert(1)</script>"
    answer = admin.post(PERSONS, data={**state.values, "source.title": evil})
    assert answer.status_code == 400
    assert evil not in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
    assert _stored(store_engine) == []


def test_duplicate_targets_are_saved_with_a_warning(admin, acme, store_engine):
    state = form_state(admin.get(PERSONS).text)
    first = {**state.values, "new_key": "region", "new_source": "Region__c"}
    assert admin.post(PERSONS, data=first).status_code == 200
    state = form_state(admin.get(PERSONS).text)
    # The "add" row names a key that already has a row: two sources for one target.
    second = {**state.values, "new_key": "region", "new_source": "Notes__c"}
    answer = admin.post(PERSONS, data=second)
    assert answer.status_code == 200, answer.text
    assert "Saved with warnings" in answer.text
    assert "custom_fields.region" in answer.text


def test_describe_is_cached_and_refreshable(admin, acme, emulator):
    before = _describes(emulator)
    for _ in range(3):
        assert admin.get(PERSONS).status_code == 200
    assert _describes(emulator) == before + 1
    assert admin.get(PERSONS + "&refresh=1").status_code == 200
    assert _describes(emulator) == before + 2


def test_each_entity_has_its_page(admin, acme):
    accounts = form_state(admin.get("/connectors/acme/mapping?entity=accounts").text)
    assert accounts.values["source.name"] == "Name"
    assert "Industry" in accounts.options["source.industry"]
    opportunities = form_state(admin.get("/connectors/acme/mapping?entity=opportunities").text)
    assert opportunities.values["source.stage"] == "StageName"
    leads = form_state(admin.get("/connectors/acme/mapping?entity=leads").text)
    assert (leads.values["source.company"], leads.values["source.lead_status"]) == (
        "Company",
        "Status",
    )
    assert "Name" in leads.options["source.first_name"]  # the compound, split on save
    assert "is_converted" not in str(leads.values)  # a fixed rule fills it, not a mapping
    unknown = admin.get("/connectors/acme/mapping?entity=campaigns")
    assert unknown.status_code == 400
    assert "persons" in unknown.text


def test_the_connectors_page_links_to_the_mapping(admin, acme):
    assert 'href="/connectors/acme/mapping"' in admin.get("/connectors").text


# -- credentials, scope, CSRF ------------------------------------------------------------------


def test_no_credential_no_page(app_url, acme, store_engine):
    api = AppClient(app_url)
    assert api.get(PERSONS).status_code == 401
    assert api.post(PERSONS, data={"source.title": "Title"}).status_code == 401
    browser = AppClient(app_url, html=True)
    answer = browser.get(PERSONS)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert _stored(store_engine) == []


def test_a_scoped_operator_sees_only_its_tenant(
    app_url, make_operator, connect_tenant, store_engine
):
    assert connect_tenant("acme").ok and connect_tenant("globex").ok
    globex = login(app_url, make_operator("globex", label="globex ops"))
    assert globex.get(PERSONS).status_code == 404
    state = form_state(globex.get("/connectors/globex/mapping?entity=persons").text)
    state.values["source.title"] = "Title"
    answer = globex.post(PERSONS, data=state.values)
    assert answer.status_code == 404
    assert _stored(store_engine) == []
    api = AppClient(app_url, token=make_operator("globex"))
    assert api.post(PERSONS, data={"source.title": "Title"}).status_code == 404
    assert _stored(store_engine) == []


@pytest.mark.parametrize("path", ["/connectors/nobody/mapping", "/connectors/a%20b/mapping"])
def test_unknown_or_malformed_tenants_are_404(admin, path):
    assert admin.get(path).status_code == 404


def test_saving_needs_the_forms_csrf_token(admin, acme, store_engine):
    state = form_state(admin.get(PERSONS).text)
    real = state.values["csrf_token"]
    for token in (None, "", "forged", real + "x", real[:-1]):
        form = {k: v for k, v in state.values.items() if k != "csrf_token"}
        if token is not None:
            form["csrf_token"] = token
        answer = admin.post(PERSONS, data=form)
        assert answer.status_code == 403
    assert _stored(store_engine) == []


def test_bearer_api_clients_save_without_csrf(app_url, make_operator, acme, store_engine):
    api = AppClient(app_url, token=make_operator("acme"))
    state = form_state(api.get(PERSONS).text)
    del state.values["csrf_token"]
    answer = api.post(PERSONS, data={**state.values, "transform.title": "uppercase"})
    assert answer.status_code == 200
    rows = [(r.entity, r.target_field, r.source_path, r.transform) for r in _stored(store_engine)]
    assert rows == [("persons", "title", "Title", "uppercase")]


def test_a_tenant_that_is_not_connected_is_told_so(admin, acme, store_engine, emulator):
    with store_engine.begin() as conn:
        set_connector_status(conn, "acme", "reconnect_needed", "refresh token refused")
    before = _describes(emulator)
    answer = admin.get(PERSONS)
    assert answer.status_code == 409
    assert "not connected to Salesforce" in answer.text
    assert _describes(emulator) == before
