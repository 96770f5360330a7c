"""The mapping page's "Scores written to Salesforce" form: what it offers (the org's fields that
can hold each score, from the describe the page already read), that a save is checked against a
fresh describe before anything is stored, and who may save or reset it.

The tenant is connected through the emulator, whose Contact has the default score fields, a
text `Notes__c`, a picklist `Region__c` and a read-only formula `Days_Since_Activity__c`.
"""

# The fixtures are shared with test_mapping_page.py by import, so tests name them as parameters.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from gtm_pipeline.config import SalesforceSettings, Settings
from gtm_pipeline.connect.tokens import TenantClients
from gtm_pipeline.salesforce.metadata import describe_object
from gtm_pipeline.sync.mapping import load_mappings
from gtm_pipeline.web.writeback_form import WritebackFormError, parse_writeback_form
from gtm_pipeline.writeback.mapping import (
    DEFAULT_FIELD_MAP,
    is_default,
    load_allowed_standard,
    load_writeback_map,
    save_writeback_map,
)
from gtm_pipeline_tests.support.web import AppClient, login
from gtm_pipeline_tests.web.test_mapping_page import (  # noqa: F401 - fixtures shared with it
    acme,
    admin,
    app_url,
    form_state,
)

PERSONS = "/connectors/acme/mapping?entity=persons"
WRITEBACK = "/connectors/acme/mapping/writeback?entity=persons"
WRITEBACK_FORM = "/mapping/writeback"
CUSTOM_MAP = {
    "fit_score": "Combined_Score__c",
    "combined_score": "Fit_Score__c",
    "tier": "Notes__c",
    "scored_at": "Scored_At__c",
}


def _writeback_form(html: str):
    return form_state(html, WRITEBACK_FORM)


def _stored_map(engine: sa.Engine, tenant: str = "acme", entity_type: str = "person"):
    """The effective map and whether it is still the default."""
    with engine.connect() as conn:
        return load_writeback_map(conn, tenant, entity_type), is_default(conn, tenant, entity_type)


def _nothing_saved(engine: sa.Engine) -> bool:
    return _stored_map(engine) == (DEFAULT_FIELD_MAP, True)


def _describes(emulator) -> int:
    return emulator.control.stats()["calls"].get("describe", 0)


def _submission(csrf: str, field_map: dict[str, str], action: str = "save") -> dict[str, str]:
    """What a browser sends: every score's select ("" = not written) and the pressed button."""
    form = {f"score.{score}": field_map.get(score, "") for score in DEFAULT_FIELD_MAP}
    return {**form, "csrf_token": csrf, "action": action}


def _csrf(admin: AppClient) -> str:
    return _writeback_form(admin.get(PERSONS).text).values["csrf_token"]


# -- what the page shows -------------------------------------------------------------------------


def test_the_page_offers_the_fitting_fields_with_the_effective_map_selected(admin, acme, emulator):
    before = _describes(emulator)
    page = admin.get(PERSONS)
    assert page.status_code == 200
    assert _describes(emulator) == before + 1  # one describe serves both forms
    assert "Scores written to Salesforce" in page.text
    assert "These are the default fields" in page.text
    state = _writeback_form(page.text)
    assert {k: v for k, v in state.values.items() if k.startswith("score.")} == {
        f"score.{score}": field for score, field in DEFAULT_FIELD_MAP.items()
    }
    fit = state.options["score.fit_score"]
    assert fit[0] == ""  # "(not written)"
    assert {"Fit_Score__c", "Engagement_Score__c", "Combined_Score__c"} <= set(fit)
    assert "Days_Since_Activity__c" not in fit  # read-only
    assert "Notes__c" not in fit and "Scored_At__c" not in fit  # not numbers
    tier = state.options["score.tier"]
    assert {"Tier__c", "Notes__c"} <= set(tier)
    assert "Region__c" not in tier  # a picklist may refuse a tier it does not list
    assert "Fit_Score__c" not in tier
    assert set(state.options["score.scored_at"]) >= {"", "Scored_At__c"}
    assert "Tier__c" not in state.options["score.scored_at"]
    # The field mapping form is separate: none of the score selects post to it.
    assert not any(name.startswith("score.") for name in form_state(page.text).values)


@pytest.mark.parametrize(
    ("entity", "sf_object", "entity_type"),
    [("accounts", "Account", "account"), ("opportunities", "Opportunity", "opportunity")],
)
def test_each_entity_shows_the_scores_of_its_own_object(
    admin, acme, entity, sf_object, entity_type
):
    page = admin.get(f"/connectors/acme/mapping?entity={entity}")
    assert page.status_code == 200
    assert f"<strong>{sf_object}</strong> object each score" in page.text
    assert f"<code>{entity_type}</code>" in page.text
    state = _writeback_form(page.text)
    assert state.values["score.tier"] == "Tier__c"
    assert "Fit_Score__c" in state.options["score.fit_score"]


def test_the_form_offers_only_fields_the_writeback_rule_accepts(admin, acme):
    """Standard fields, compound parts, keys and whole-number fields hold the org's own data or
    would round a score: none of them is ever offered."""
    for entity, sf_object in (("persons", "Contact"), ("accounts", "Account"),
                              ("opportunities", "Opportunity")):  # fmt: skip
        state = _writeback_form(admin.get(f"/connectors/acme/mapping?entity={entity}").text)
        numbers = {"Fit_Score__c", "Engagement_Score__c", "Combined_Score__c"}
        for score in ("fit_score", "engagement_score", "combined_score"):
            assert set(state.options[f"score.{score}"]) == {"", *numbers}, sf_object
        assert set(state.options["score.tier"]) == {"", "Tier__c", "Notes__c"}, sf_object
        assert set(state.options["score.scored_at"]) == {"", "Scored_At__c"}, sf_object


@pytest.mark.parametrize(
    ("score", "field", "reason"),
    [
        ("tier", "Title", "Contact.Title is a standard Salesforce field"),
        ("tier", "FirstName", "Contact.FirstName is part of the compound field Name"),
        ("fit_score", "MailingLatitude", "Contact.MailingLatitude is part of the compound field"),
        ("scored_at", "EmailBouncedDate", "Contact.EmailBouncedDate is a standard Salesforce"),
        ("fit_score", "Legacy_Score__c", "Contact.Legacy_Score__c keeps 0 decimal place(s)"),
        ("tier", "External_Key__c", "Contact.External_Key__c is an external id field"),
    ],
)
def test_a_field_the_rule_refuses_is_refused_with_its_reason(
    admin, acme, store_engine, score, field, reason
):
    answer = admin.post(
        WRITEBACK, data=_submission(_csrf(admin), {**DEFAULT_FIELD_MAP, score: field})
    )
    assert answer.status_code == 400
    assert f"The writeback mapping was not saved: {reason}" in answer.text.replace("&#39;", "'")
    assert _nothing_saved(store_engine)


def test_a_standard_field_chosen_from_the_command_line_is_offered_and_keeps_its_flag(
    admin, acme, store_engine
):
    """The page agrees with the run: a standard field set with --allow-standard-field is offered
    for its score, and saving the form keeps it and its flag; the page allows no new one."""
    with store_engine.begin() as conn:
        save_writeback_map(conn, "acme", "person", {"tier": "Title"}, allowed_standard=["Title"])
    page = admin.get(PERSONS).text.replace("&#39;", "'")
    assert _writeback_form(page).values["score.tier"] == "Title"
    assert "cannot hold tier" not in page and "is a standard Salesforce field" not in page
    answer = admin.post(WRITEBACK, data=_submission(_csrf(admin), {"tier": "Title"}))
    assert answer.status_code in (200, 303), answer.text
    with store_engine.connect() as conn:
        assert load_allowed_standard(conn, "acme", "person") == {"title"}
    another = {"tier": "Title", "scored_at": "EmailBouncedDate"}
    answer = admin.post(WRITEBACK, data=_submission(_csrf(admin), another))
    assert answer.status_code == 400
    assert "Contact.EmailBouncedDate is a standard Salesforce field" in answer.text
    assert _stored_map(store_engine) == ({"tier": "Title"}, False)


# -- saving ------------------------------------------------------------------------------------


def test_saving_a_valid_map_stores_it_after_a_fresh_describe(admin, acme, store_engine, emulator):
    csrf = _csrf(admin)
    before = _describes(emulator)
    answer = admin.post(WRITEBACK, data=_submission(csrf, CUSTOM_MAP))
    assert answer.status_code == 200, answer.text
    assert "Writeback mapping saved." in answer.text
    assert _describes(emulator) == before + 1  # validated against the org as it is now
    assert _stored_map(store_engine) == (CUSTOM_MAP, False)
    with store_engine.connect() as conn:
        assert load_mappings(conn, "acme", "persons") == []  # the sync mapping is untouched

    again = admin.get(PERSONS)
    assert "This tenant chose its own fields" in again.text
    shown = _writeback_form(again.text).values
    assert shown["score.fit_score"] == "Combined_Score__c"
    assert shown["score.engagement_score"] == ""  # not written
    assert shown["score.tier"] == "Notes__c"


def test_field_names_are_stored_as_the_org_spells_them(admin, acme, store_engine):
    answer = admin.post(WRITEBACK, data=_submission(_csrf(admin), {"tier": "notes__c"}))
    assert answer.status_code == 200, answer.text
    assert _stored_map(store_engine) == ({"tier": "Notes__c"}, False)


def test_reset_returns_to_the_default_fields(admin, acme, store_engine):
    csrf = _csrf(admin)
    assert admin.post(WRITEBACK, data=_submission(csrf, CUSTOM_MAP)).status_code == 200
    assert _stored_map(store_engine) == (CUSTOM_MAP, False)
    # The selects ride along with the reset button; they are ignored.
    answer = admin.post(WRITEBACK, data=_submission(csrf, CUSTOM_MAP, action="reset"))
    assert answer.status_code == 200, answer.text
    assert "Scores are written to the default fields again." in answer.text
    assert _nothing_saved(store_engine)
    shown = _writeback_form(answer.text).values
    assert shown["score.fit_score"] == "Fit_Score__c"
    assert "These are the default fields" in answer.text


def test_a_bearer_api_client_saves_without_csrf(app_url, make_operator, acme, store_engine):
    api = AppClient(app_url, token=make_operator("acme"))
    answer = api.post(WRITEBACK, data={"score.tier": "Notes__c"})
    assert answer.status_code == 200, answer.text
    assert _stored_map(store_engine) == ({"tier": "Notes__c"}, False)


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "field", "reason"),
    [
        pytest.param("fit_score", "Notes__c", "fit_score needs a number field", id="text-as-score"),
        pytest.param(
            "fit_score",
            "Days_Since_Activity__c",
            "Contact.Days_Since_Activity__c is a formula field",
            id="formula",
        ),
        pytest.param(
            "scored_at",
            "SystemModstamp",
            "Contact.SystemModstamp is not updateable",
            id="read-only",
        ),
        pytest.param("scored_at", "Notes__c", "scored_at needs a datetime field", id="datetime"),
        pytest.param("tier", "Region__c", "is a picklist field", id="picklist"),
        pytest.param("fit_score", "No_Such__c", "Contact has no field No_Such__c", id="unknown"),
        pytest.param(
            "fit_score",
            "Fit_Score__c; DROP",
            "which is not a Salesforce field name",
            id="not-a-name",
        ),
        pytest.param("combined_score", "Fit_Score__c", "is the target of two", id="field-twice"),
    ],
)
def test_a_field_that_does_not_fit_is_refused_and_nothing_saved(
    admin, acme, store_engine, score, field, reason
):
    submitted = {**DEFAULT_FIELD_MAP, score: field}
    answer = admin.post(WRITEBACK, data=_submission(_csrf(admin), submitted))
    assert answer.status_code == 400
    assert "The writeback mapping was not saved" in answer.text
    assert reason.replace("'", "&#39;") in answer.text
    assert "Writeback mapping saved" not in answer.text
    assert _nothing_saved(store_engine)
    # The page shows what was submitted, so the operator can fix it.
    assert _writeback_form(answer.text).values[f"score.{score}"] == field


def test_a_map_that_writes_no_score_is_refused(admin, acme, store_engine):
    answer = admin.post(WRITEBACK, data=_submission(_csrf(admin), {}))
    assert answer.status_code == 400
    assert "at least one score, or use the default fields" in answer.text
    assert _nothing_saved(store_engine)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        pytest.param({"score.lead_score": "Fit_Score__c"}, "does not have", id="unknown-score"),
        pytest.param({"direction": "sync"}, "does not have", id="unknown-field"),
        pytest.param({"action": "delete"}, "unknown action", id="unknown-action"),
        pytest.param({"score.tier": "x" * 256}, "longer than", id="too-long"),
        # More fields than the form has are not even parsed (the app's plain 400 page).
        pytest.param({"action": "save", "a": "1"}, "could not be handled", id="too-many-fields"),
    ],
)
def test_forms_the_page_cannot_produce_are_refused(admin, acme, store_engine, extra, reason):
    form = _submission(_csrf(admin), CUSTOM_MAP)
    del form["action"]  # a browser sends it only with a button press; keeps to the field limit
    answer = admin.post(WRITEBACK, data={**form, **extra})
    assert answer.status_code == 400
    assert reason in answer.text
    assert _nothing_saved(store_engine)


def test_a_field_deleted_since_the_page_was_rendered_is_refused(
    admin, acme, store_engine, sf_settings: SalesforceSettings, connect_env
):
    """The page offered a field from its cached describe; the org no longer has it."""
    org = TenantClients.from_settings(
        store_engine, Settings(connect_env), salesforce=sf_settings
    ).for_tenant("acme")
    document = org.describe("Contact")
    gone = {**document["fields"][0], "name": "Old_Score__c", "label": "Old Score"}
    gone.update(type="double", updateable=True, custom=True, compoundFieldName=None)
    gone.update(precision=18, scale=2, idLookup=False)
    stale = {**document, "fields": [*document["fields"], gone]}
    describe_object(_Describes(org.org_id, stale), "Contact", refresh=True)  # the cache

    state = _writeback_form(admin.get(PERSONS).text)
    assert "Old_Score__c" in state.options["score.fit_score"]
    submitted = {**DEFAULT_FIELD_MAP, "fit_score": "Old_Score__c"}
    form = _submission(state.values["csrf_token"], submitted)
    answer = admin.post(WRITEBACK, data=form)
    assert answer.status_code == 400
    assert "Contact has no field Old_Score__c" in answer.text
    assert _nothing_saved(store_engine)
    # The page shown next lists the org's fields as they are now.
    after = _writeback_form(answer.text).options["score.fit_score"]
    assert after.count("Old_Score__c") == 1  # the submitted value, marked as not fitting...
    assert "Old_Score__c (cannot hold fit_score in this org)" in answer.text  # ...not a candidate


class _Describes:
    """A describe client of one org answering one fixed document (to seed the describe cache)."""

    def __init__(self, org_id: str | None, document: dict[str, Any]) -> None:
        self.org_id = org_id
        self.document = document

    def describe(self, sobject: str) -> dict[str, Any]:
        return self.document


def test_everything_shown_is_escaped(admin, acme, store_engine):
    evil = '"><script>alert(1)</script>'
    submitted = {**DEFAULT_FIELD_MAP, "tier": evil}
    answer = admin.post(WRITEBACK, data=_submission(_csrf(admin), submitted))
    assert answer.status_code == 400
    assert "<script>" not in answer.text
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
    assert _nothing_saved(store_engine)


# -- credentials, scope, CSRF ------------------------------------------------------------------


def test_saving_needs_the_forms_csrf_token(admin, acme, store_engine):
    real = _csrf(admin)
    for token in (None, "", "forged", real + "x", real[:-1]):
        form = _submission(real, CUSTOM_MAP)
        del form["csrf_token"]
        if token is not None:
            form["csrf_token"] = token
        assert admin.post(WRITEBACK, data=form).status_code == 403
        reset = {**form, "action": "reset"}
        assert admin.post(WRITEBACK, data=reset).status_code == 403
    assert _nothing_saved(store_engine)


def test_another_tenants_operator_gets_404(app_url, make_operator, connect_tenant, store_engine):
    assert connect_tenant("acme").ok and connect_tenant("globex").ok
    globex = login(app_url, make_operator("globex", label="globex ops"))
    own = globex.get("/connectors/globex/mapping?entity=persons")
    assert own.status_code == 200
    csrf = _writeback_form(own.text).values["csrf_token"]
    assert globex.post(WRITEBACK, data=_submission(csrf, CUSTOM_MAP)).status_code == 404
    assert globex.post(WRITEBACK, data=_submission(csrf, {}, "reset")).status_code == 404
    api = AppClient(app_url, token=make_operator("globex"))
    assert api.post(WRITEBACK, data={"score.tier": "Notes__c"}).status_code == 404
    assert _nothing_saved(store_engine)
    # Its own tenant it may change, and only that one.
    mine = "/connectors/globex/mapping/writeback?entity=persons"
    assert globex.post(mine, data=_submission(csrf, CUSTOM_MAP)).status_code == 200
    assert _stored_map(store_engine, "globex") == (CUSTOM_MAP, False)
    assert _nothing_saved(store_engine)


def test_no_credential_no_save(app_url, acme, store_engine):
    assert AppClient(app_url).post(WRITEBACK, data={"score.tier": "Notes__c"}).status_code == 401
    assert _nothing_saved(store_engine)


def test_an_unknown_entity_is_refused(admin, acme, store_engine):
    form = _submission(_csrf(admin), CUSTOM_MAP)
    answer = admin.post("/connectors/acme/mapping/writeback?entity=campaigns", data=form)
    assert answer.status_code == 400
    assert _nothing_saved(store_engine)


# -- the form without HTTP ---------------------------------------------------------------------


def test_a_submitted_form_becomes_the_map_of_the_scores_written():
    items = [("csrf_token", "t"), ("score.fit_score", " Fit_Score__c "), ("score.tier", "")]
    assert parse_writeback_form(items) == ("save", {"fit_score": "Fit_Score__c"})
    assert parse_writeback_form([*items, ("action", "reset")])[0] == "reset"
    assert parse_writeback_form([("action", "reset")]) == ("reset", {})


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        pytest.param([("score.tier", "A"), ("score.tier", "B")], "twice", id="repeated"),
        pytest.param([("score.tier", "")], "at least one score", id="nothing-written"),
        pytest.param([("tier", "Tier__c")], "does not have", id="no-prefix"),
    ],
)
def test_forms_the_page_cannot_produce_are_refused_without_http(items, reason):
    with pytest.raises(WritebackFormError, match=reason):
        parse_writeback_form(items)
