"""Salesforce OAuth 2.0 web server flow on the wire: authorize URL, code exchange, refresh, revoke.

Every token response is checked before anything trusts it: its `signature` must be
base64(HMAC-SHA256(id + issued_at, client_secret)), compared in constant time, so a response that
did not come from the connected app's authority (or was altered on the way) is refused; the
instance URL and the identity URL must be https without user-info, so tokens are never sent in
clear text afterwards, and on a Salesforce domain (`salesforce/domains.py`) unless the settings
allow any instance (SALESFORCE_ALLOW_ANY_INSTANCE=1, for the emulator): the signature cannot
tell Salesforce from whatever server a wrong SALESFORCE_LOGIN_URL names. Errors carry
Salesforce's `error` code and description, never a token, code, verifier or the client secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests

from gtm_pipeline.config import ALLOW_ANY_INSTANCE_VARIABLE, ConfigError, SalesforceSettings
from gtm_pipeline.errors import GtmError
from gtm_pipeline.salesforce.domains import (
    SALESFORCE_DOMAIN_SUFFIXES,
    is_salesforce_host,
    plain_https_host,
)
from gtm_pipeline.salesforce.http import PinnedSession

AUTHORIZE_PATH = "/services/oauth2/authorize"
TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 - an endpoint path, not a secret
REVOKE_PATH = "/services/oauth2/revoke"
SCOPE = "api refresh_token"
OAUTH_TIMEOUT_SECONDS = 30.0
REFRESH_ATTEMPTS = 3

# The identity URL ends in /id/<org Id>/<user Id>, each 15 or 18 characters.
_ID_PATH = re.compile(
    r"/id/(?P<org>00D[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?)"
    r"/(?P<user>005[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?)/?$"
)
_REQUIRED_FIELDS = ("access_token", "instance_url", "id", "issued_at", "signature")
_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
UNTRUSTED_INSTANCE = "untrusted_instance"

# What each error means to the person who clicked "Connect", in words they can act on.
_PLAIN_WORDS = {
    "access_denied": "Access was denied in Salesforce, so the org was not connected. "
    "Click Connect again and choose Allow to connect it.",
    "invalid_grant": "Salesforce refused the authorization (the code was already used, expired "
    "or did not match). Start the connection again.",
    "redirect_uri_mismatch": "Salesforce refused the callback URL: SALESFORCE_CALLBACK_URL must "
    "match the connected app's callback URL exactly.",
    "invalid_client_id": "Salesforce does not know this connected app: check SALESFORCE_CLIENT_ID.",
    "invalid_client": "Salesforce refused the connected app's credentials: check "
    "SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET.",
    "invalid_request": "Salesforce rejected the request as malformed. Start the connection again; "
    "if it keeps failing, check the connected app's settings.",
    "unsupported_grant_type": "Salesforce does not allow this kind of authorization for the "
    "connected app. Check its OAuth settings.",
    "unsupported_response_type": "Salesforce does not allow the authorization code flow for the "
    "connected app. Check its OAuth settings.",
    "invalid_scope": "Salesforce refused the requested access (api, refresh_token). Allow these "
    "scopes on the connected app.",
    "inactive_user": "The Salesforce user is inactive. Connect with an active user.",
    "inactive_org": "The Salesforce org is inactive or locked.",
    "rate_limit_exceeded": "Salesforce is limiting login attempts right now. Wait a few minutes "
    "and try again.",
    "unreachable": "Salesforce could not be reached. Check the network and SALESFORCE_LOGIN_URL, "
    "then try again.",
    "tls_error": "Salesforce's TLS certificate did not verify: set SALESFORCE_CA_BUNDLE to the CA "
    "file that signs it.",
    "server_error": "Salesforce had a temporary problem. Try again in a few minutes.",
    "invalid_response": "Salesforce's answer could not be trusted or understood, so nothing was "
    "stored. Try again; if it keeps failing, check SALESFORCE_LOGIN_URL and the client secret.",
    UNTRUSTED_INSTANCE: "A token answer (or the instance stored with the tokens) named a server "
    "outside Salesforce's domains "
    f"({', '.join('*.' + d for d in SALESFORCE_DOMAIN_SUFFIXES)}), so the access token was not "
    f"used and nothing was stored. Check SALESFORCE_LOGIN_URL; set "
    f"{ALLOW_ANY_INSTANCE_VARIABLE}=1 only for a test server such as the emulator.",
}


class OAuthError(GtmError):
    """The authority refused a request, or its answer could not be trusted.

    `error` is the OAuth error code (Salesforce's, or one of ours: unreachable, tls_error,
    server_error, invalid_response); `description` is the authority's text. Neither ever holds a
    token or the client secret.
    """

    def __init__(self, error: str, description: str = "", *, status: int | None = None) -> None:
        self.error = error or "unknown_error"
        self.description = description
        self.status = status
        self.retryable = self.transient
        detail = f": {description}" if description else ""
        super().__init__(f"Salesforce OAuth error {self.error}{detail}")

    @property
    def transient(self) -> bool:
        """Whether trying again later may succeed (network trouble, a 5xx)."""
        return self.error in ("unreachable", "server_error")

    @property
    def user_message(self) -> str:
        return self.plain_words()

    def plain_words(self) -> str:
        """What happened, for the person connecting, in words they can act on."""
        known = _PLAIN_WORDS.get(self.error)
        if known is not None:
            return known
        detail = f" ({self.description})" if self.description else ""
        return f"Salesforce refused the connection: {self.error}{detail}."


class InvalidGrant(OAuthError):
    """The code or refresh token is no longer valid (used, expired, revoked): reconnect."""


@dataclass(frozen=True)
class TokenResponse:
    """A verified token endpoint answer. Tokens and signature are kept out of repr."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    instance_url: str
    id_url: str
    issued_at: datetime
    signature: str = field(repr=False)
    scope: str
    org_id: str
    user_id: str


def new_pkce_pair() -> tuple[str, str]:
    """A fresh PKCE (verifier, S256 challenge): 64 url-safe characters and its SHA-256."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


def expected_signature(id_url: str, issued_at: str, client_secret: str) -> str:
    """base64(HMAC-SHA256(id + issued_at, key=client_secret)), as Salesforce signs its answers."""
    mac = hmac.new(client_secret.encode(), (id_url + issued_at).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


class OAuthClient:
    """Talks to `{login_url}/services/oauth2/*` for one connected app."""

    def __init__(
        self, settings: SalesforceSettings, *, session: requests.Session | None = None
    ) -> None:
        if not settings.client_id:
            raise ConfigError(
                "SALESFORCE_CLIENT_ID must be set to the connected app's consumer key"
            )
        if not settings.client_secret:
            raise ConfigError(
                "SALESFORCE_CLIENT_SECRET must be set to the connected app's consumer secret"
            )
        self._settings = settings
        self._session = session or PinnedSession(settings.ca_bundle, OAUTH_TIMEOUT_SECONDS)

    def __repr__(self) -> str:
        return f"OAuthClient(login_url={self._settings.login_url!r})"

    @property
    def login_url(self) -> str:
        return self._settings.login_url

    def check_token_destination(self, url: str, name: str = "instance_url") -> None:
        """Refuse a URL an access token must not be sent to; `name` says which one it is.

        https without user-info always; a Salesforce domain unless the settings allow any
        instance. Used on every token response and on the instance URL of stored tokens.
        """
        host = plain_https_host(url, path_allowed=name != "instance_url")
        if host is None:
            raise OAuthError(
                "invalid_response",
                f"the token response's {name} is not a plain https URL (no user-info, query, "
                "fragment or spaces; an instance URL has no path)",
            )
        if not (self._settings.allow_any_instance or is_salesforce_host(host)):
            raise OAuthError(
                UNTRUSTED_INSTANCE,
                f"the {name} is not on a Salesforce domain and {ALLOW_ANY_INSTANCE_VARIABLE} "
                "is not 1",
            )

    def authorize_url(
        self, *, redirect_uri: str, state: str, code_challenge: str, prompt: str | None = None
    ) -> str:
        """Where to send the user's browser to grant access (PKCE S256, api + refresh_token)."""
        params = {
            "response_type": "code",
            "client_id": self._settings.client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        if prompt:
            params["prompt"] = prompt
        # quote, not quote_plus: Salesforce documents `scope=api%20refresh_token`.
        query = urlencode(params, quote_via=quote)
        return f"{self._settings.login_url}{AUTHORIZE_PATH}?{query}"

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> TokenResponse:
        """Trade an authorization code for tokens. Never retried: the code is single-use."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": self._settings.client_id,
            "client_secret": self._settings.client_secret,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        return self._verified(self._post_json(TOKEN_PATH, form))

    def refresh(self, refresh_token: str) -> TokenResponse:
        """New access token from a refresh token; `refresh_token` is set only when rotated.

        Retried a few times on network trouble and 5xx answers, since a long sync would
        otherwise fail on one blip; an error answer (4xx) is final.
        """
        if not refresh_token:
            raise InvalidGrant("invalid_grant", "no refresh token is stored")
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self._settings.client_id,
            "client_secret": self._settings.client_secret,
        }
        for attempt in range(1, REFRESH_ATTEMPTS + 1):
            try:
                return self._verified(self._post_json(TOKEN_PATH, form))
            except OAuthError as exc:
                if not exc.transient or attempt == REFRESH_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def revoke(self, token: str) -> None:
        """Revoke a token; revoking a refresh token also ends every session it issued."""
        response = self._post(REVOKE_PATH, {"token": token})
        if response.status_code != 200:
            raise _error_from(response)

    # -- wire --------------------------------------------------------------------------------

    def _post(self, path: str, form: dict[str, str]) -> requests.Response:
        url = f"{self._settings.login_url}{path}"
        try:
            return self._session.post(url, data=form, headers={"Accept": "application/json"})
        except requests.exceptions.SSLError:
            raise OAuthError("tls_error", f"TLS verification of {url} failed") from None
        except requests.exceptions.RequestException as exc:
            raise OAuthError("unreachable", f"{type(exc).__name__} calling {url}") from None

    def _post_json(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        response = self._post(path, form)
        if response.status_code != 200:
            raise _error_from(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise OAuthError("invalid_response", "the token endpoint did not answer with JSON")
        return body

    def _verified(self, body: dict[str, Any]) -> TokenResponse:
        missing = [name for name in _REQUIRED_FIELDS if not isinstance(body.get(name), str)]
        if missing:
            raise OAuthError("invalid_response", f"the token response lacks {', '.join(missing)}")
        id_url, issued_at = body["id"], body["issued_at"]
        expected = expected_signature(id_url, issued_at, self._settings.client_secret)
        if not hmac.compare_digest(expected.encode(), body["signature"].encode("utf-8")):
            raise OAuthError(
                "invalid_response", "the token response signature does not match the client secret"
            )
        instance_url = body["instance_url"].rstrip("/")
        self.check_token_destination(instance_url, "instance_url")
        self.check_token_destination(id_url, "id")
        match = _ID_PATH.search(urlsplit(id_url).path)
        if match is None:
            raise OAuthError("invalid_response", "the token response's id is not an identity URL")
        refresh_token = body.get("refresh_token")
        return TokenResponse(
            access_token=body["access_token"],
            refresh_token=refresh_token
            if isinstance(refresh_token, str) and refresh_token
            else None,
            instance_url=instance_url,
            id_url=id_url,
            issued_at=_issued_at(issued_at),
            signature=body["signature"],
            scope=str(body.get("scope") or ""),
            org_id=match.group("org"),
            user_id=match.group("user"),
        )


def _issued_at(raw: str) -> datetime:
    """Salesforce's `issued_at` is epoch milliseconds as a string."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 15:
        raise OAuthError("invalid_response", "the token response's issued_at is not epoch millis")
    return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)


def _error_from(response: requests.Response) -> OAuthError:
    """The OAuthError for a non-200 answer: `{"error", "error_description"}` or a bare status."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        error = body["error"]
        description = str(body.get("error_description") or "")[:300]
        kind = InvalidGrant if error == "invalid_grant" else OAuthError
        return kind(error, description, status=status)
    if status in _TRANSIENT_STATUSES or status >= 500:
        return OAuthError("server_error", f"HTTP {status} from Salesforce", status=status)
    return OAuthError(
        "invalid_response", f"HTTP {status} without an OAuth error body", status=status
    )
