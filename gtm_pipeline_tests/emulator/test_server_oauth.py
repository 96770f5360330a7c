"""OAuth 2.0 web-server flow over HTTPS: consent, codes, PKCE, refresh, rotation, revoke, expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

import pytest

from gtm_pipeline.emulator.testing import CAPinnedSession, _FormReader, new_pkce_pair, obtain_tokens

REDIRECT = "https://app.example.test/oauth/callback"


def _authorize(handle, session, **overrides):
    params = {
        "response_type": "code",
        "client_id": handle.info["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "api refresh_token",
        "state": "st-123",
    }
    params.update(overrides)
    params = {k: v for k, v in params.items() if v is not None}
    return session.get(
        handle.info["login_url"] + "/services/oauth2/authorize",
        params=params,
        allow_redirects=False,
        timeout=10,
    )


def _redirect_params(response) -> dict[str, str]:
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _token(handle, session, **form):
    return session.post(handle.info["login_url"] + "/services/oauth2/token", data=form, timeout=10)


def _code_form(handle, code, **extra):
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": handle.info["client_id"],
        "client_secret": handle.info["client_secret"],
        "redirect_uri": REDIRECT,
    }
    form.update(extra)
    return {k: v for k, v in form.items() if v is not None}


def _click(session, page, decision: str):
    reader = _FormReader()
    reader.feed(page.text)
    return session.post(
        page.url.split("?")[0],
        data={**reader.fields, "decision": decision},
        allow_redirects=False,
        timeout=10,
    )


@pytest.fixture()
def consent_emulator(start_emulator):
    return start_emulator(auto_approve=False)


@pytest.fixture()
def http(emulator):
    return CAPinnedSession(emulator.info["ca_bundle"])


def test_consent_page_allow_redirects_with_code_and_state(consent_emulator) -> None:
    session = CAPinnedSession(consent_emulator.info["ca_bundle"])
    page = _authorize(consent_emulator, session, prompt="login consent")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert 'value="allow"' in page.text and 'value="deny"' in page.text
    returned = _redirect_params(_click(session, page, "allow"))
    assert returned["state"] == "st-123"
    assert len(returned["code"]) > 20
    tokens = _token(consent_emulator, session, **_code_form(consent_emulator, returned["code"]))
    assert tokens.status_code == 200
    # The form handle is single use too: replaying it is refused.
    assert _click(session, page, "allow").status_code == 400


def test_consent_page_deny_redirects_with_access_denied(consent_emulator) -> None:
    session = CAPinnedSession(consent_emulator.info["ca_bundle"])
    page = _authorize(consent_emulator, session)
    response = _click(session, page, "deny")
    assert response.status_code == 302
    assert response.headers["location"] == (
        REDIRECT + "?error=access_denied&error_description=end-user+denied+authorization"
        "&state=st-123"
    )


def test_auto_approve_redirects_straight_back(emulator, http) -> None:
    returned = _redirect_params(_authorize(emulator, http))
    assert returned["state"] == "st-123" and "code" in returned
    assert emulator.control.stats()["calls"]["authorize"] == 1


def test_redirect_keeps_existing_query_parameters(emulator, http) -> None:
    response = _authorize(emulator, http, redirect_uri=REDIRECT + "?tenant=t1")
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["tenant"] == ["t1"] and "code" in query


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"client_id": "3MVG9unknown"}, "invalid_client_id"),
        ({"redirect_uri": None}, "invalid_request"),
        ({"redirect_uri": "javascript:alert(1)"}, "redirect_uri_mismatch"),
    ],
)
def test_untrustworthy_authorize_requests_get_an_error_page(
    emulator, http, overrides, error
) -> None:
    response = _authorize(emulator, http, **overrides)
    assert response.status_code == 400
    assert "text/html" in response.headers["content-type"]
    assert error in response.text
    assert "location" not in response.headers


def test_registered_redirect_uris_are_enforced(start_emulator) -> None:
    handle = start_emulator(redirect_uris=(REDIRECT,))
    session = CAPinnedSession(handle.info["ca_bundle"])
    assert _authorize(handle, session).status_code == 302
    other = _authorize(handle, session, redirect_uri="https://evil.example/cb")
    assert other.status_code == 400 and "redirect_uri_mismatch" in other.text


def test_bad_response_type_and_pkce_method_go_back_to_the_client(emulator, http) -> None:
    returned = _redirect_params(_authorize(emulator, http, response_type="token"))
    assert returned["error"] == "unsupported_response_type" and returned["state"] == "st-123"
    returned = _redirect_params(
        _authorize(emulator, http, code_challenge="abc", code_challenge_method="plain")
    )
    assert returned["error"] == "invalid_request"


def test_token_success_body_matches_the_reference(emulator, http) -> None:
    code = _redirect_params(_authorize(emulator, http))["code"]
    response = _token(emulator, http, **_code_form(emulator, code))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {
        "access_token",
        "refresh_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    }
    org = emulator.org
    assert body["access_token"].startswith(org.org_id[:15] + "!AR")
    assert body["refresh_token"].startswith("5Aep")
    assert body["scope"] == "api refresh_token"
    assert body["instance_url"] == emulator.info["instance_url"]
    assert body["id"] == f"{emulator.info['login_url']}/id/{org.org_id}/{org.user_id}"
    assert body["token_type"] == "Bearer"  # noqa: S105 - a token type, not a secret
    assert body["issued_at"].isdigit() and len(body["issued_at"]) == 13
    expected = hmac.new(
        emulator.info["client_secret"].encode(),
        (body["id"] + body["issued_at"]).encode(),
        hashlib.sha256,
    ).digest()
    assert base64.b64decode(body["signature"]) == expected


def test_no_refresh_token_without_the_scope(emulator, http) -> None:
    code = _redirect_params(_authorize(emulator, http, scope="api"))["code"]
    body = _token(emulator, http, **_code_form(emulator, code)).json()
    assert "refresh_token" not in body and body["scope"] == "api"


def test_code_is_single_use(emulator, http) -> None:
    code = _redirect_params(_authorize(emulator, http))["code"]
    assert _token(emulator, http, **_code_form(emulator, code)).status_code == 200
    again = _token(emulator, http, **_code_form(emulator, code))
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_code_expires_after_ten_minutes(emulator, http, clock) -> None:
    code = _redirect_params(_authorize(emulator, http))["code"]
    clock.advance(601)
    response = _token(emulator, http, **_code_form(emulator, code))
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "expired authorization code",
    }


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"redirect_uri": REDIRECT + "/other"}, "redirect_uri_mismatch"),
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"client_secret": None}, "invalid_client"),
        ({"client_id": "3MVG9other"}, "invalid_client_id"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": None}, "invalid_request"),
        ({"code": "not-a-code"}, "invalid_grant"),
    ],
)
def test_code_exchange_errors(emulator, http, change, error) -> None:
    code = _redirect_params(_authorize(emulator, http))["code"]
    form = {**_code_form(emulator, code), **change}
    response = _token(emulator, http, **{k: v for k, v in form.items() if v is not None})
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert set(response.json()) == {"error", "error_description"}
    assert emulator.info["client_secret"] not in response.text


def test_pkce_verifier_is_checked(emulator, http) -> None:
    verifier, challenge = new_pkce_pair()
    params = {"code_challenge": challenge, "code_challenge_method": "S256"}
    for wrong, expected in ((None, "invalid_request"), ("x" * 50, "invalid_grant")):
        code = _redirect_params(_authorize(emulator, http, **params))["code"]
        response = _token(emulator, http, **_code_form(emulator, code, code_verifier=wrong))
        assert response.json()["error"] == expected
    code = _redirect_params(_authorize(emulator, http, **params))["code"]
    response = _token(emulator, http, **_code_form(emulator, code, code_verifier=verifier))
    assert response.status_code == 200


def test_token_endpoint_wants_a_form(emulator, http) -> None:
    response = http.post(
        emulator.info["login_url"] + "/services/oauth2/token",
        json={"grant_type": "refresh_token"},
        timeout=10,
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def _refresh(handle, session, refresh_token, **extra):
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    form["client_id"] = handle.info["client_id"]
    form.update(extra)
    return _token(handle, session, **form)


def test_refresh_without_rotation_keeps_the_refresh_token(emulator, http) -> None:
    tokens = obtain_tokens(emulator.info, session=http)
    first = _refresh(emulator, http, tokens["refresh_token"])
    assert first.status_code == 200
    assert "refresh_token" not in first.json()
    assert first.json()["access_token"] != tokens["access_token"]
    secret = emulator.info["client_secret"]
    assert _refresh(emulator, http, tokens["refresh_token"], client_secret=secret).ok
    wrong = _refresh(emulator, http, tokens["refresh_token"], client_secret="nope")  # noqa: S106
    assert wrong.json()["error"] == "invalid_client"
    bogus = _refresh(emulator, http, "5Aepbogus")
    assert bogus.json() == {
        "error": "invalid_grant",
        "error_description": "expired access/refresh token",
    }


def test_refresh_with_rotation_retires_the_old_token(emulator, http) -> None:
    emulator.control.configure(rotate_refresh_tokens=True)
    tokens = obtain_tokens(emulator.info, session=http)
    rotated = _refresh(emulator, http, tokens["refresh_token"]).json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert _refresh(emulator, http, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert _refresh(emulator, http, rotated["refresh_token"]).status_code == 200


def _data_status(handle, session, access_token) -> int:
    return session.get(
        handle.info["instance_url"] + "/services/data/v59.0/sobjects/Account/describe",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    ).status_code


def _revoke(handle, session, token):
    return session.post(
        handle.info["login_url"] + "/services/oauth2/revoke", data={"token": token}, timeout=10
    )


def test_revoke_access_token(emulator, http) -> None:
    tokens = obtain_tokens(emulator.info, session=http)
    assert _data_status(emulator, http, tokens["access_token"]) == 200
    assert _revoke(emulator, http, tokens["access_token"]).status_code == 200
    assert _data_status(emulator, http, tokens["access_token"]) == 401
    assert _refresh(emulator, http, tokens["refresh_token"]).status_code == 200
    assert _revoke(emulator, http, tokens["access_token"]).status_code == 400
    assert emulator.control.stats()["calls"]["revoke"] == 2


def test_revoking_a_refresh_token_kills_its_sessions(emulator, http) -> None:
    tokens = obtain_tokens(emulator.info, session=http)
    refreshed = _refresh(emulator, http, tokens["refresh_token"]).json()["access_token"]
    other = obtain_tokens(emulator.info, session=http)
    assert _revoke(emulator, http, tokens["refresh_token"]).status_code == 200
    assert _data_status(emulator, http, tokens["access_token"]) == 401
    assert _data_status(emulator, http, refreshed) == 401
    assert _refresh(emulator, http, tokens["refresh_token"]).status_code == 400
    assert _data_status(emulator, http, other["access_token"]) == 200


def test_sessions_expire_after_the_lifetime(start_emulator, clock) -> None:
    handle = start_emulator(session_lifetime=300)
    session = CAPinnedSession(handle.info["ca_bundle"])
    tokens = obtain_tokens(handle.info, session=session)
    clock.advance(299)
    assert _data_status(handle, session, tokens["access_token"]) == 200
    clock.advance(2)
    response = session.get(
        handle.info["instance_url"] + "/services/data/v59.0/query?q=SELECT+Id+FROM+Account",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    fresh = _refresh(handle, session, tokens["refresh_token"]).json()["access_token"]
    assert _data_status(handle, session, fresh) == 200
    handle.control.configure(session_lifetime=10)
    clock.advance(11)
    assert _data_status(handle, session, fresh) == 401
