"""The OAuth wire client against the emulator over HTTPS, and against crafted answers."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter

from gtm_pipeline.config import ConfigError, SalesforceSettings
from gtm_pipeline.emulator.testing import CAPinnedSession, EmulatorHandle, running_emulator
from gtm_pipeline.salesforce.oauth import (
    InvalidGrant,
    OAuthClient,
    OAuthError,
    TokenResponse,
    expected_signature,
    new_pkce_pair,
)

REDIRECT_URI = "http://127.0.0.1:8765/api/connectors/salesforce/callback"
TOKEN_FAULT_PATH = r"^/services/oauth2/token$"  # noqa: S105 - a URL path, not a password


@pytest.fixture(scope="module")
def oauth_emulator(tmp_path_factory) -> Iterator[EmulatorHandle]:
    counts = {"Account": 2, "Contact": 2, "Opportunity": 2}
    with running_emulator(tmp_path_factory.mktemp("oauth"), counts=counts, seed=3) as handle:
        yield handle


@pytest.fixture()
def emu(oauth_emulator: EmulatorHandle) -> Iterator[EmulatorHandle]:
    control = oauth_emulator.control
    control.clear_faults()
    control.configure(rotate_refresh_tokens=False, auto_approve=True)
    control.reset_stats()
    yield oauth_emulator
    control.clear_faults()
    control.configure(rotate_refresh_tokens=False, auto_approve=True)


def settings_for(handle: EmulatorHandle, **overrides: object) -> SalesforceSettings:
    info = handle.info
    values = {
        "login_url": info["login_url"],
        "ca_bundle": info["ca_bundle"],
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
        "allow_any_instance": True,  # the emulator serves on 127.0.0.1
        **overrides,
    }
    return SalesforceSettings(**values)


def authorize(handle: EmulatorHandle, url: str) -> dict[str, str]:
    """Follow an authorize URL as an auto-approving browser; return the callback's parameters."""
    session = CAPinnedSession(handle.info["ca_bundle"])
    response = session.get(url, allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text[:300]
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def grant(handle: EmulatorHandle, client: OAuthClient) -> tuple[str, str]:
    """A fresh authorization code and its PKCE verifier."""
    verifier, challenge = new_pkce_pair()
    url = client.authorize_url(redirect_uri=REDIRECT_URI, state="s1", code_challenge=challenge)
    params = authorize(handle, url)
    assert params["state"] == "s1"
    return params["code"], verifier


def connected(handle: EmulatorHandle, client: OAuthClient) -> TokenResponse:
    code, verifier = grant(handle, client)
    return client.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)


# -- authorize URL and PKCE -------------------------------------------------------------------


def test_authorize_url_carries_every_parameter_salesforce_documents():
    settings = SalesforceSettings(
        login_url="https://login.example.test", client_id="3MVGclient", client_secret="s" * 40
    )
    url = OAuthClient(settings).authorize_url(
        redirect_uri=REDIRECT_URI, state="abc.def", code_challenge="chal", prompt="login consent"
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://login.example.test/services/oauth2/authorize"
    )
    assert "scope=api%20refresh_token" in parts.query
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "response_type": "code",
        "client_id": "3MVGclient",
        "redirect_uri": REDIRECT_URI,
        "scope": "api refresh_token",
        "state": "abc.def",
        "code_challenge": "chal",
        "code_challenge_method": "S256",
        "prompt": "login consent",
    }
    assert "s" * 40 not in url


def test_pkce_pair_is_rfc7636_s256_and_fresh_each_time():
    verifier, challenge = new_pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert set(verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert new_pkce_pair()[0] != verifier


def test_missing_client_credentials_fail_naming_the_variable():
    with pytest.raises(ConfigError, match="SALESFORCE_CLIENT_ID"):
        OAuthClient(SalesforceSettings(client_secret="x" * 40))
    with pytest.raises(ConfigError, match="SALESFORCE_CLIENT_SECRET"):
        OAuthClient(SalesforceSettings(client_id="3MVG"))


# -- against the emulator ---------------------------------------------------------------------


def test_code_exchange_returns_verified_tokens_and_identity(emu):
    before = datetime.now(UTC)
    tokens = connected(emu, OAuthClient(settings_for(emu)))
    assert tokens.access_token.startswith(emu.info["org_id"][:15] + "!")
    assert tokens.refresh_token and tokens.refresh_token.startswith("5Aep")
    assert tokens.instance_url == emu.info["instance_url"]
    assert (tokens.org_id, tokens.user_id) == (emu.info["org_id"], emu.info["user_id"])
    assert tokens.scope == "api refresh_token"
    assert abs((tokens.issued_at - before).total_seconds()) < 5
    assert tokens.issued_at.tzinfo is not None
    text = repr(tokens)
    for secret in (tokens.access_token, tokens.refresh_token, tokens.signature):
        assert secret not in text


def test_reused_code_is_invalid_grant(emu):
    client = OAuthClient(settings_for(emu))
    code, verifier = grant(emu, client)
    client.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
    with pytest.raises(InvalidGrant) as caught:
        client.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert caught.value.error == "invalid_grant" and caught.value.status == 400
    assert code not in str(caught.value) and verifier not in str(caught.value)
    assert "Start the connection again" in caught.value.plain_words()


def test_wrong_pkce_verifier_is_invalid_grant(emu):
    client = OAuthClient(settings_for(emu))
    code, _ = grant(emu, client)
    with pytest.raises(InvalidGrant, match="invalid code verifier"):
        client.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=new_pkce_pair()[0])


def test_redirect_uri_mismatch_is_reported_with_its_code(emu):
    client = OAuthClient(settings_for(emu))
    code, verifier = grant(emu, client)
    with pytest.raises(OAuthError) as caught:
        client.exchange_code(
            code=code, redirect_uri="http://127.0.0.1:9/other", code_verifier=verifier
        )
    assert caught.value.error == "redirect_uri_mismatch"
    assert "SALESFORCE_CALLBACK_URL" in caught.value.plain_words()


def test_wrong_client_secret_is_invalid_client_and_never_echoed(emu):
    code, verifier = grant(emu, OAuthClient(settings_for(emu)))
    wrong = "w" * 64
    client = OAuthClient(settings_for(emu, client_secret=wrong))
    with pytest.raises(OAuthError) as caught:
        client.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert caught.value.error == "invalid_client"
    assert wrong not in str(caught.value) and wrong not in repr(client)
    assert "SALESFORCE_CLIENT_SECRET" in caught.value.plain_words()


def test_refresh_without_rotation_keeps_the_refresh_token(emu):
    client = OAuthClient(settings_for(emu))
    first = connected(emu, client)
    again = client.refresh(first.refresh_token)
    assert again.access_token != first.access_token
    assert again.refresh_token is None
    assert again.org_id == first.org_id
    assert client.refresh(first.refresh_token).access_token != again.access_token


def test_refresh_with_rotation_returns_a_new_refresh_token_and_retires_the_old(emu):
    client = OAuthClient(settings_for(emu))
    first = connected(emu, client)
    emu.control.configure(rotate_refresh_tokens=True)
    rotated = client.refresh(first.refresh_token)
    assert rotated.refresh_token and rotated.refresh_token != first.refresh_token
    with pytest.raises(InvalidGrant):
        client.refresh(first.refresh_token)
    assert client.refresh(rotated.refresh_token).access_token


def test_revoked_refresh_token_is_refused_afterwards(emu):
    client = OAuthClient(settings_for(emu))
    tokens = connected(emu, client)
    client.revoke(tokens.refresh_token)
    with pytest.raises(InvalidGrant) as caught:
        client.refresh(tokens.refresh_token)
    assert tokens.refresh_token not in str(caught.value)
    with pytest.raises(OAuthError, match="unsupported_token_type"):
        client.revoke(tokens.refresh_token)


def test_refresh_retries_a_transient_5xx_then_succeeds(emu):
    client = OAuthClient(settings_for(emu))
    tokens = connected(emu, client)
    emu.control.add_fault(kind="status", status=503, times=2, path=TOKEN_FAULT_PATH)
    emu.control.reset_stats()
    assert client.refresh(tokens.refresh_token).access_token
    assert emu.control.stats()["calls"]["token"] == 3


def test_refresh_gives_up_after_bounded_5xx_attempts(emu):
    client = OAuthClient(settings_for(emu))
    tokens = connected(emu, client)
    emu.control.add_fault(kind="status", status=503, times=10, path=TOKEN_FAULT_PATH)
    emu.control.reset_stats()
    with pytest.raises(OAuthError) as caught:
        client.refresh(tokens.refresh_token)
    assert caught.value.error == "server_error" and caught.value.transient
    assert emu.control.stats()["calls"]["token"] == 3


def test_code_exchange_is_never_retried(emu):
    client = OAuthClient(settings_for(emu))
    code, verifier = grant(emu, client)
    emu.control.add_fault(kind="status", status=503, times=1, path=TOKEN_FAULT_PATH)
    emu.control.reset_stats()
    with pytest.raises(OAuthError, match="server_error"):
        client.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert emu.control.stats()["calls"]["token"] == 1


def test_configured_ca_bundle_wins_over_requests_ca_bundle(emu, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    tokens = connected(emu, OAuthClient(settings_for(emu)))
    assert tokens.access_token
    untrusting = OAuthClient(settings_for(emu, ca_bundle=None))
    with pytest.raises(OAuthError) as caught:
        untrusting.refresh(tokens.refresh_token)
    assert caught.value.error == "tls_error"
    assert "SALESFORCE_CA_BUNDLE" in caught.value.plain_words()


def test_unreachable_login_url_is_a_clear_transient_error(emu):
    settings = settings_for(emu, login_url="https://127.0.0.1:9")
    with pytest.raises(OAuthError) as caught:
        OAuthClient(settings).refresh("5Aepdead")
    assert caught.value.error == "unreachable" and caught.value.transient
    assert "5Aepdead" not in str(caught.value)


# -- answers that must not be trusted ---------------------------------------------------------

SECRET = "c" * 64
ID_URL = "https://login.salesforce.com/id/00DRO0000000DGb2AM/005RO000003RzQfYAK"
INSTANCE_URL = "https://acme.my.salesforce.com"


class CannedAdapter(BaseAdapter):
    """Answers every request with one prepared response and remembers what was sent."""

    def __init__(self, status: int, body: object) -> None:
        super().__init__()
        self.status = status
        self.body = body
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        self.sent.append(request)
        response = requests.Response()
        response.status_code = self.status
        raw = self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()
        response._content = raw
        response.headers["Content-Type"] = "application/json"
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


def canned(
    status: int, body: object, *, allow_any_instance: bool = False
) -> tuple[OAuthClient, CannedAdapter]:
    adapter = CannedAdapter(status, body)
    session = requests.Session()
    session.mount("https://", adapter)
    settings = SalesforceSettings(
        login_url="https://login.example.test",
        client_id="3MVGx",
        client_secret=SECRET,
        allow_any_instance=allow_any_instance,
    )
    return OAuthClient(settings, session=session), adapter


def good_body(**overrides: object) -> dict[str, object]:
    issued_at = str(int(time.time() * 1000))
    body: dict[str, object] = {
        "access_token": "00DRO0000000DGb!ARsecretaccess",
        "refresh_token": "5Aepsecretrefresh",
        "instance_url": INSTANCE_URL,
        "id": ID_URL,
        "token_type": "Bearer",
        "issued_at": issued_at,
        "scope": "api refresh_token",
        "signature": expected_signature(ID_URL, issued_at, SECRET),
    }
    body.update(overrides)
    return body


def test_a_correctly_signed_answer_is_accepted_and_the_form_is_right():
    client, adapter = canned(200, good_body())
    tokens = client.exchange_code(
        code="aPrxcode", redirect_uri=REDIRECT_URI, code_verifier="v" * 50
    )
    assert tokens.org_id == "00DRO0000000DGb2AM" and tokens.user_id == "005RO000003RzQfYAK"
    [sent] = adapter.sent
    assert sent.url == "https://login.example.test/services/oauth2/token"
    form = {k: v[0] for k, v in parse_qs(sent.body).items()}
    assert form == {
        "grant_type": "authorization_code",
        "code": "aPrxcode",
        "client_id": "3MVGx",
        "client_secret": SECRET,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": "v" * 50,
    }


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"signature": base64.b64encode(b"x" * 32).decode()}, "signature"),
        ({"issued_at": "1699999999999"}, "signature"),  # signature made for another issued_at
        ({"id": ID_URL.replace("005", "006")}, "signature"),
        ({"instance_url": "http://org.example.test"}, "instance_url"),
        ({"access_token": None}, "access_token"),
        ({"signature": None}, "signature"),
    ],
)
def test_untrustworthy_answers_are_refused_without_echoing_tokens(overrides, fragment):
    client, _ = canned(200, good_body(**overrides))
    with pytest.raises(OAuthError) as caught:
        client.refresh("5Aepsecretrefresh")
    assert caught.value.error == "invalid_response"
    assert fragment in caught.value.description
    for text in (str(caught.value), caught.value.plain_words(), repr(caught.value)):
        for secret in ("secretaccess", "secretrefresh", SECRET):
            assert secret not in text


def test_identity_url_that_is_not_one_is_refused():
    issued_at = str(int(time.time() * 1000))
    bad_id = "https://login.salesforce.com/whoami"
    body = good_body(
        id=bad_id, issued_at=issued_at, signature=expected_signature(bad_id, issued_at, SECRET)
    )
    client, _ = canned(200, body)
    with pytest.raises(OAuthError, match="identity URL"):
        client.refresh("5Aep")


def test_non_json_success_and_bare_error_statuses_are_clear():
    client, _ = canned(200, b"<html>proxy login</html>")
    with pytest.raises(OAuthError, match="invalid_response"):
        client.refresh("5Aep")
    client, _ = canned(404, b"not here")
    with pytest.raises(OAuthError, match="HTTP 404"):
        client.refresh("5Aep")


def test_an_error_body_maps_to_its_code_and_plain_words():
    client, _ = canned(400, {"error": "inactive_user", "error_description": "user is inactive"})
    with pytest.raises(OAuthError) as caught:
        client.refresh("5Aep")
    assert (caught.value.error, caught.value.description) == ("inactive_user", "user is inactive")
    assert not isinstance(caught.value, InvalidGrant)
    assert "active user" in caught.value.plain_words()
    unknown = OAuthError("brand_new_error", "something")
    assert (
        unknown.plain_words() == "Salesforce refused the connection: brand_new_error (something)."
    )


# -- where an access token may go -------------------------------------------------------------

SALESFORCE_HOSTS = [
    "https://acme.my.salesforce.com",
    "https://acme--uat.sandbox.my.salesforce.com",
    "https://acme.develop.my.salesforce.com",
    "https://na1.salesforce.com",
    "https://acme.lightning.force.com",
    "https://acme.cloudforce.com",
    "https://ACME.My.Salesforce.com",
    "https://acme.salesforce.mil",
]
FOREIGN_HOSTS = [
    "https://org.example.test",
    "https://salesforce.com.attacker.example",
    "https://attacker-salesforce.com",
    "https://salesforce.com",  # the bare domain serves no org
    "https://127.0.0.1:8443",
    "https://acme.my.salesforce.com.",
    "https://attacker.example\\.salesforce.com",
    "https://salesforce.mil.attacker.example",
]


def _signed(**overrides: object) -> dict[str, object]:
    """A good body with `overrides`, re-signed so only the overridden URL is wrong."""
    body = good_body(**overrides)
    body["signature"] = expected_signature(str(body["id"]), str(body["issued_at"]), SECRET)
    return body


@pytest.mark.parametrize("url", SALESFORCE_HOSTS)
def test_salesforce_domains_are_trusted_for_the_instance_and_the_identity(url):
    identity = ID_URL.replace("https://login.salesforce.com", url)
    client, _ = canned(200, _signed(instance_url=url, id=identity))
    assert client.refresh("5Aep").instance_url == url


@pytest.mark.parametrize("field", ["instance_url", "id"])
@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_a_foreign_instance_or_identity_host_is_refused_naming_the_setting(field, host):
    url = host if field == "instance_url" else f"{host}/id/00DRO0000000DGb2AM/005RO000003RzQfYAK"
    client, adapter = canned(200, _signed(**{field: url}))
    with pytest.raises(OAuthError) as caught:
        client.refresh("5Aepsecretrefresh")
    assert caught.value.error == "untrusted_instance"
    assert field in caught.value.description
    assert "SALESFORCE_ALLOW_ANY_INSTANCE" in caught.value.plain_words()
    for text in (str(caught.value), caught.value.plain_words(), repr(caught.value)):
        assert "secretaccess" not in text and "secretrefresh" not in text and SECRET not in text
    assert [request.url for request in adapter.sent] == [
        "https://login.example.test/services/oauth2/token"  # nothing was sent anywhere else
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://acme.my.salesforce.com",
        "https://user@acme.my.salesforce.com",
        "https://127.0.0.1@acme.my.salesforce.com",
        "https://acme.my.salesforce.com@attacker.example",
        "https://acme.my.salesforce.com:notaport",
        "https://[::1].acme.my.salesforce.com",  # host ::1 to Python, invalid to browsers
        "https://acme.my.salesforce.com#@attacker.example",
        "https://acme.my.salesforce.com/?next=https://attacker.example",
        "https://acme.my.salesforce.com/services/data",  # an instance URL is a bare origin
        "https://attacker.example\t.salesforce.com",  # urlsplit drops the tab, urllib3 does not
        "https://acme.my.salesforce.com\n",
        " https://acme.my.salesforce.com",
    ],
)
@pytest.mark.parametrize("allow_any_instance", [False, True])
def test_plain_http_and_user_info_are_refused_even_when_any_instance_is_allowed(
    url, allow_any_instance
):
    client, _ = canned(200, _signed(instance_url=url), allow_any_instance=allow_any_instance)
    with pytest.raises(OAuthError) as caught:
        client.refresh("5Aep")
    assert caught.value.error == "invalid_response"
    assert "instance_url" in caught.value.description


def test_allow_any_instance_trusts_a_test_server_over_https():
    url = "https://127.0.0.1:8443"
    body = _signed(instance_url=url, id=f"{url}/id/00DRO0000000DGb2AM/005RO000003RzQfYAK")
    client, _ = canned(200, body, allow_any_instance=True)
    assert client.refresh("5Aep").instance_url == url


def test_the_emulator_is_refused_unless_any_instance_is_allowed(emu):
    client = OAuthClient(settings_for(emu, allow_any_instance=False))
    code, verifier = grant(emu, client)
    with pytest.raises(OAuthError) as caught:
        client.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert caught.value.error == "untrusted_instance"
    assert "SALESFORCE_ALLOW_ANY_INSTANCE" in caught.value.plain_words()
