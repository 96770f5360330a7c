"""The connect tests' constants and helpers: the callback URL, the flow binding, the connected
app's settings for an emulator, and `follow_authorize`, which plays the browser.

- `BINDING`: the browser and operator tests start and finish flows as (a flow finishes only for
  the binding it was started with; tests of that rule make their own).
- `follow_authorize(handle, url, decision=...)`: plays the browser: follows an authorize URL,
  clicks Allow or Deny on a consent page, and returns the callback's query parameters.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from gtm_pipeline.config import SalesforceSettings
from gtm_pipeline.connect.flow import FlowBinding
from gtm_pipeline.emulator.testing import CAPinnedSession, EmulatorHandle, answer_consent

CALLBACK_URL = "http://127.0.0.1:8765/api/connectors/salesforce/callback"
CONNECTOR_ID = "salesforce"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CONNECT_COUNTS = {"Account": 10, "Contact": 30, "Opportunity": 10}
BINDING = FlowBinding.new(operator_id="op_tests")


def settings_for(emulator: EmulatorHandle) -> SalesforceSettings:
    """The connected app's settings for `emulator` (login URL, API version, CA, client)."""
    info = emulator.info
    return SalesforceSettings(
        login_url=info["login_url"],
        api_version=info["api_version"],
        ca_bundle=info["ca_bundle"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        allow_any_instance=True,  # the emulator serves on 127.0.0.1, not a Salesforce domain
    )


def follow_authorize(
    handle: EmulatorHandle, url: str, *, decision: str = "allow"
) -> dict[str, str]:
    """Play the browser on an authorize URL; return the parameters sent to the callback."""
    session = CAPinnedSession(handle.info["ca_bundle"])
    response = session.get(url, allow_redirects=False, timeout=30)
    if response.status_code == 200:
        response = answer_consent(session, response, decision)
    assert response.status_code == 302, f"authorize answered {response.status_code}"
    location = response.headers["location"]
    assert location.startswith(CALLBACK_URL), "authorize redirected somewhere unexpected"
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
