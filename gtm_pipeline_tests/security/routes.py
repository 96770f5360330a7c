"""The app's route table as the attack suite walks it, and how to drive each state-changing route.

Routes are read from the Starlette app itself, so a route added later is attacked too; a
state-changing route that `valid_forms` does not know fails the CSRF test until it is added.
"""

from __future__ import annotations

import re

from starlette.routing import Route

from gtm_pipeline.web.csrf import CSRF_FIELD
from gtm_pipeline.web.writeback_form import SCORE
from gtm_pipeline.writeback.mapping import DEFAULT_FIELD_MAP
from gtm_pipeline_tests.web.test_mapping_page import form_state

TENANT = "acme"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def all_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route, GET ones included (HEAD left out: it mirrors GET)."""
    found = []
    for route in app.routes:
        assert isinstance(route, Route), f"unexpected route kind {route!r}: teach this suite"
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append((method, route.path))
    return found


def state_changing_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route that takes anything but GET/HEAD, from the route table."""
    return [(method, path) for method, path in all_routes(app) if method not in SAFE_METHODS]


def concrete(path: str, tenant: str = TENANT) -> str:
    """The path with every parameter filled: `tenant` for `{tenant}`."""
    return PARAM.sub(lambda m: tenant if m.group(1) == "tenant" else "x", path)


def valid_forms(browser, admin_token: str) -> dict[tuple[str, str], tuple[str, dict]]:
    """For each known route: a query string and a form that succeed with the CSRF token."""
    mapping = form_state(browser.get(f"/connectors/{TENANT}/mapping?entity=persons").text).values
    mapping = {k: v for k, v in mapping.items() if k != CSRF_FIELD}
    return {
        ("POST", "/login"): ("", {"token": admin_token}),
        ("POST", "/logout"): ("", {}),
        ("POST", "/connectors/tenants"): ("", {"tenant": "initech"}),
        ("POST", "/api/connectors/salesforce/authorize"): ("", {"tenant": TENANT}),
        ("POST", "/connectors/{tenant}/disconnect"): ("", {}),
        ("POST", "/connectors/{tenant}/mapping"): (
            "?entity=persons",
            {**mapping, "transform.title": "uppercase"},
        ),
        ("POST", "/connectors/{tenant}/mapping/writeback"): (
            "?entity=persons",
            {f"{SCORE}{score}": field for score, field in DEFAULT_FIELD_MAP.items()},
        ),
    }
