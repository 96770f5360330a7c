"""The emulator's OAuth 2.0 authority: web-server flow with PKCE, refresh, revoke, session expiry.

It holds no HTTP: the routes in `oauth_routes` translate requests into these calls, so the rules
(single-use codes, redirect_uri binding, rotation, session lifetime) are testable on their own
and read like the reference. Token values are never part of any repr or error message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Clock = Callable[[], float]

DEFAULT_SCOPE = "api refresh_token"
REFRESH_SCOPES = frozenset({"refresh_token", "offline_access"})


class OAuthError(Exception):
    """An OAuth failure in Salesforce's shape: HTTP 400 `{"error", "error_description"}`."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class AuthorizePageError(Exception):
    """An authorize request too broken to redirect back (unknown client, bad redirect_uri)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass(frozen=True)
class OAuthClient:
    """The one connected app the emulator knows."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...] | None = None  # None: any http(s) callback is accepted


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorize request, waiting for the user's decision."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    code_challenge: str | None = field(repr=False)


@dataclass
class _Code:
    request: AuthorizationRequest
    issued_at: float


@dataclass
class _RefreshGrant:
    scope: str
    access_tokens: set[str] = field(default_factory=set, repr=False)


@dataclass
class _Session:
    issued_at: float
    refresh_token: str | None = field(repr=False)


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge for a verifier (RFC 7636): base64url(sha256), no padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def token_signature(identity_url: str, issued_at: str, client_secret: str) -> str:
    """Salesforce's `signature`: base64(HMAC-SHA256(id + issued_at, key=client_secret))."""
    mac = hmac.new(client_secret.encode(), (identity_url + issued_at).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def _redirect_allowed(client: OAuthClient, redirect_uri: str) -> bool:
    if client.redirect_uris is not None:
        return redirect_uri in client.redirect_uris
    return redirect_uri.startswith(("https://", "http://"))


class OAuthAuthority:
    """Issues and checks codes and tokens for one org; safe to call from several threads."""

    def __init__(
        self,
        *,
        client: OAuthClient,
        org_id: str,
        user_id: str,
        login_url: str,
        instance_url: str,
        clock: Clock,
        session_lifetime: float = 7200.0,
        code_lifetime: float = 600.0,
        rotate_refresh_tokens: bool = False,
    ) -> None:
        self.client = client
        self.org_id = org_id
        self.user_id = user_id
        self.login_url = login_url
        self.instance_url = instance_url
        self.session_lifetime = session_lifetime
        self.code_lifetime = code_lifetime
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, AuthorizationRequest] = {}
        self._codes: dict[str, _Code] = {}
        self._refresh: dict[str, _RefreshGrant] = {}
        self._sessions: dict[str, _Session] = {}

    def __repr__(self) -> str:
        return f"OAuthAuthority(client_id={self.client.client_id!r}, org_id={self.org_id!r})"

    @property
    def identity_url(self) -> str:
        return f"{self.login_url}/id/{self.org_id}/{self.user_id}"

    # -- authorize -------------------------------------------------------------------------

    def validate_authorize(self, params: Mapping[str, str]) -> AuthorizationRequest:
        """Check an authorize request; errors the client can be told about go to its redirect.

        Raises AuthorizePageError when the redirect target itself is untrustworthy, and
        OAuthError (to be sent to redirect_uri) for the rest.
        """
        client_id = params.get("client_id", "")
        if not hmac.compare_digest(client_id.encode(), self.client.client_id.encode()):
            raise AuthorizePageError("invalid_client_id", "client identifier invalid")
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri:
            raise AuthorizePageError("invalid_request", "missing required redirect_uri parameter")
        if not _redirect_allowed(self.client, redirect_uri):
            raise AuthorizePageError(
                "redirect_uri_mismatch", "redirect_uri must match configuration"
            )
        request = AuthorizationRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=" ".join((params.get("scope") or DEFAULT_SCOPE).split()),
            state=params.get("state"),
            code_challenge=params.get("code_challenge") or None,
        )
        if params.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "response type not supported")
        method = params.get("code_challenge_method")
        if request.code_challenge is not None and method != "S256":
            raise OAuthError("invalid_request", "code_challenge_method must be S256")
        if request.code_challenge is None and method:
            raise OAuthError("invalid_request", "missing required code challenge")
        return request

    def park(self, request: AuthorizationRequest) -> str:
        """Remember a request shown on the consent page; the returned id is the form's handle."""
        handle = secrets.token_urlsafe(24)
        with self._lock:
            self._pending[handle] = request
        return handle

    def claim(self, handle: str) -> AuthorizationRequest | None:
        """The parked request for a consent form, once only (a replayed form is refused)."""
        with self._lock:
            return self._pending.pop(handle, None)

    def approve(self, request: AuthorizationRequest) -> str:
        """A new single-use authorization code for an approved request."""
        code = "aPrx" + secrets.token_urlsafe(48)
        with self._lock:
            self._codes[code] = _Code(request=request, issued_at=self._clock())
        return code

    # -- token -----------------------------------------------------------------------------

    def token(self, form: Mapping[str, str]) -> dict[str, str]:
        """Handle a token-endpoint form: an authorization code exchange or a refresh."""
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise OAuthError("invalid_request", "grant type not specified")
        if grant_type == "authorization_code":
            return self._exchange_code(form)
        if grant_type == "refresh_token":
            return self._refresh_grant(form)
        raise OAuthError("unsupported_grant_type", "grant type not supported")

    def _check_client(self, form: Mapping[str, str], *, secret_required: bool) -> None:
        client_id = form.get("client_id", "")
        if not client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not hmac.compare_digest(client_id.encode(), self.client.client_id.encode()):
            raise OAuthError("invalid_client_id", "client identifier invalid")
        secret = form.get("client_secret")
        if secret is None and not secret_required:
            return
        if not hmac.compare_digest((secret or "").encode(), self.client.client_secret.encode()):
            raise OAuthError("invalid_client", "invalid client credentials")

    def _exchange_code(self, form: Mapping[str, str]) -> dict[str, str]:
        code = form.get("code", "")
        if not code:
            raise OAuthError("invalid_request", "missing required code parameter")
        self._check_client(form, secret_required=True)
        with self._lock:
            entry = self._codes.pop(code, None)  # single use: any presentation burns it
        if entry is None:
            raise OAuthError("invalid_grant", "invalid authorization code")
        if self._clock() - entry.issued_at > self.code_lifetime:
            raise OAuthError("invalid_grant", "expired authorization code")
        request = entry.request
        if form.get("redirect_uri", "") != request.redirect_uri:
            raise OAuthError("redirect_uri_mismatch", "redirect_uri must match configuration")
        if request.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            if not verifier:
                raise OAuthError("invalid_request", "missing required code_verifier parameter")
            if not hmac.compare_digest(pkce_challenge(verifier), request.code_challenge):
                raise OAuthError("invalid_grant", "invalid code verifier")
        refresh_token = None
        if REFRESH_SCOPES & set(request.scope.split()):
            refresh_token = self._new_refresh_token(request.scope)
        return self._issue(request.scope, refresh_token, include_refresh=refresh_token is not None)

    def _refresh_grant(self, form: Mapping[str, str]) -> dict[str, str]:
        self._check_client(form, secret_required=False)
        presented = form.get("refresh_token", "")
        if not presented:
            raise OAuthError("invalid_request", "missing required refresh_token parameter")
        with self._lock:
            grant = self._refresh.get(presented)
            if grant is None:
                raise OAuthError("invalid_grant", "expired access/refresh token")
            if self.rotate_refresh_tokens:
                del self._refresh[presented]
        if self.rotate_refresh_tokens:
            rotated = self._new_refresh_token(grant.scope, grant)
            return self._issue(grant.scope, rotated, include_refresh=True)
        return self._issue(grant.scope, presented, include_refresh=False)

    def _new_refresh_token(self, scope: str, grant: _RefreshGrant | None = None) -> str:
        token = "5Aep" + secrets.token_urlsafe(60)
        with self._lock:
            self._refresh[token] = grant or _RefreshGrant(scope=scope)
        return token

    def _issue(
        self, scope: str, refresh_token: str | None, *, include_refresh: bool
    ) -> dict[str, str]:
        now = self._clock()
        issued_at = str(int(now * 1000))
        access_token = f"{self.org_id[:15]}!AR" + secrets.token_urlsafe(72)
        with self._lock:
            self._sessions[access_token] = _Session(issued_at=now, refresh_token=refresh_token)
            if refresh_token is not None and refresh_token in self._refresh:
                self._refresh[refresh_token].access_tokens.add(access_token)
        body = {"access_token": access_token}
        if include_refresh and refresh_token is not None:
            body["refresh_token"] = refresh_token
        body.update(
            signature=token_signature(self.identity_url, issued_at, self.client.client_secret),
            scope=scope,
            instance_url=self.instance_url,
            id=self.identity_url,
            token_type="Bearer",  # noqa: S106 - the OAuth token type, not a secret
            issued_at=issued_at,
        )
        return body

    # -- revoke and sessions -----------------------------------------------------------------

    def revoke(self, token: str) -> None:
        """Revoke an access token, or a refresh token together with every session it issued."""
        with self._lock:
            if self._sessions.pop(token, None) is not None:
                return
            grant = self._refresh.get(token)
            if grant is None:
                raise OAuthError("unsupported_token_type", "this token type is not supported")
            for refresh, other in list(self._refresh.items()):
                if other is grant:  # a rotated family shares one grant
                    del self._refresh[refresh]
            for access in grant.access_tokens:
                self._sessions.pop(access, None)

    def session_valid(self, access_token: str) -> bool:
        """True when the token is a live session; expired ones are forgotten on the way."""
        with self._lock:
            session = self._sessions.get(access_token)
            if session is None:
                return False
            if self._clock() - session.issued_at >= self.session_lifetime:
                del self._sessions[access_token]
                return False
            return True

    def expire_all_sessions(self) -> int:
        """Invalidate every access token now (refresh tokens keep working); returns how many."""
        with self._lock:
            count = len(self._sessions)
            self._sessions.clear()
            for grant in self._refresh.values():
                grant.access_tokens.clear()
            return count
