"""A tenant-scoped operator (acme) aimed at another tenant (globex) on every route of the app,
with a bearer token and with a logged-in browser (valid CSRF token): every route that names a
tenant answers 404, the same as for a tenant that does not exist, no answer mentions globex, and
the store is unchanged. Routes are read from the app, so a new one is attacked too.

What other folders already cover is listed in the table of `security/__init__.py`.
"""

from __future__ import annotations

from gtm_pipeline.web.csrf import CSRF_FIELD
from gtm_pipeline_tests.security.attacks import attempt
from gtm_pipeline_tests.security.routes import all_routes, concrete
from gtm_pipeline_tests.support.security import snapshot
from gtm_pipeline_tests.support.web import csrf_from

OWN, OTHER, NOBODY = "acme", "globex", "initech"
# Routes that take the tenant from the query or the form rather than the path.
TENANT_IN_PARAMS = {
    ("GET", "/api/connectors/salesforce/authorize"),
    ("POST", "/api/connectors/salesforce/authorize"),
    ("POST", "/connectors/tenants"),
}


def _names_a_tenant(method: str, path: str) -> bool:
    return "{tenant}" in path or (method, path) in TENANT_IN_PARAMS


def test_a_scoped_operator_reaches_no_other_tenant_on_any_route(
    web, tenants, make_operator, store_engine
):
    token = make_operator(OWN, label="acme ops")
    api = web.client(token)
    browser = web.login(token)
    csrf = csrf_from(browser.get("/connectors").text)
    routes = [r for r in all_routes(web.app) if r != ("POST", "/logout")]
    assert sum(_names_a_tenant(*r) for r in routes) >= 6  # the table is really read
    before = snapshot(store_engine)
    for method, path in routes:
        answers: dict[str, list] = {OTHER: [], NOBODY: []}
        for target in (OTHER, NOBODY):
            params = {"tenant": target, "entity": "persons", "connector": "salesforce"}
            form = {"tenant": target, CSRF_FIELD: csrf, "source.title": "Title"}
            url = concrete(path, target)
            for client in (api, browser):
                with attempt("cross-tenant operator"):
                    answer = client.request(method, url, params=params, data=form)
                    answers[target].append(answer)
                    assert answer.status_code < 500, (method, path, answer.status_code)
                    assert target not in answer.text, (method, path)
                    if _names_a_tenant(method, path):
                        assert answer.status_code == 404, (method, path, answer.status_code)
        if _names_a_tenant(method, path):
            with attempt("cross-tenant operator"):
                # Nothing tells a tenant that exists from one that does not.
                for seen, unseen in zip(answers[OTHER], answers[NOBODY], strict=True):
                    assert seen.text.replace(OTHER, NOBODY) == unseen.text
    with attempt("cross-tenant operator"):
        assert snapshot(store_engine) == before
    # The same operator does reach its own tenant, so the 404s were about scope.
    assert api.get(f"/api/connectors/{OWN}").status_code == 200
    assert browser.get(f"/connectors/{OWN}/mapping").status_code == 200
