"""Starting a connection through the app, as its Connect Salesforce button does.

The start is a POST (with the page's CSRF token from a browser session, none with a bearer
token) answered by a 303 to Salesforce and the binding cookie; the client keeps the cookie in its
jar, so the same client can then deliver the callback.
"""

from __future__ import annotations

import requests

from gtm_pipeline.web.csrf import CSRF_FIELD
from gtm_pipeline.web.routes import AUTHORIZE_PATH
from gtm_pipeline_tests.support.connect import follow_authorize
from gtm_pipeline_tests.support.web import AppClient, csrf_from

CALLBACK = "/api/connectors/salesforce/callback"


def start_connection(
    client: AppClient, tenant: str = "acme", connector: str = "salesforce"
) -> requests.Response:
    """POST the Connect Salesforce form for `tenant`; the answer is not followed."""
    form = {"tenant": tenant, "connector": connector}
    if "Authorization" not in client.headers:
        form[CSRF_FIELD] = csrf_from(client.get("/connectors").text)
    return client.post(AUTHORIZE_PATH, data=form)


def authorize_url(client: AppClient, tenant: str = "acme") -> str:
    """The Salesforce authorize URL the app sends `client` to (the binding cookie is now set)."""
    answer = start_connection(client, tenant)
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def approved_callback(
    client: AppClient, emulator, tenant: str = "acme", *, decision: str = "allow"
) -> dict[str, str]:
    """Start from `client`, answer Salesforce's consent, return the callback's parameters."""
    return follow_authorize(emulator, authorize_url(client, tenant), decision=decision)
