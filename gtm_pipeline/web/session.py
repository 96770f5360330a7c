"""Signed, stateless browser sessions: who logged in, and the CSRF token of their forms.

The cookie holds the SHA-256 hash of the operator's bearer token (never the token), a CSRF token
and the issue time, signed with HMAC-SHA256. The hash lets every request re-check the credential
in the store, so revoking it ends every session made from it, and the issue time is checked
against the credential's `sessions_valid_after`, so logging out ends it on the server too.
Written here rather than with Starlette's SessionMiddleware so the app needs no extra signing
library, and so a tampered, expired or foreign cookie is simply "no session" instead of an
exception.

`CookiePolicy` names the app's cookies and says whether they are Secure, from the one URL that
tells how browsers reach the app: SALESFORCE_CALLBACK_URL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

COOKIE_NAME = "gtm_session"
BINDING_COOKIE_NAME = "gtm_oauth_binding"
# The `__Host-` prefix makes browsers accept a cookie only if it is Secure, has Path=/ and no
# Domain, so neither a sibling subdomain nor a plain-http page can plant or shadow it.
HOST_PREFIX = "__Host-"
DEFAULT_MAX_AGE_SECONDS = 12 * 3600
MAX_COOKIE_CHARS = 2048
# A cookie issued this far in the future was not issued by a clock we trust.
CLOCK_SKEW_SECONDS = 60.0
_KEY_LABEL = b"gtm-pipeline web session v1\x00"


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class SessionData:
    """One browser's session; `operator_hash` is None before login (the login form's CSRF)."""

    csrf: str
    issued_at: float
    operator_hash: str | None = None

    @classmethod
    def anonymous(cls, now: float) -> SessionData:
        return cls(csrf=new_csrf_token(), issued_at=now)

    def logged_in(self, operator_hash: str, now: float) -> SessionData:
        """A fresh session for a login: new CSRF token, so one fixed before login is useless."""
        return replace(self, csrf=new_csrf_token(), issued_at=now, operator_hash=operator_hash)


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Turns SessionData into a cookie value and back, refusing anything not signed by us."""

    def __init__(
        self,
        secret: str,
        *,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 32:
            raise ValueError("the session secret must be at least 32 characters")
        self._key = hashlib.sha256(_KEY_LABEL + secret.encode("utf-8")).digest()
        self.max_age_seconds = max_age_seconds
        self._clock = clock

    def __repr__(self) -> str:
        return f"SessionCodec(max_age_seconds={self.max_age_seconds})"

    def now(self) -> float:
        return self._clock()

    def _sign(self, payload: str) -> str:
        return _b64encode(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def dumps(self, data: SessionData) -> str:
        body = {"c": data.csrf, "t": data.issued_at, "o": data.operator_hash}
        payload = _b64encode(json.dumps(body, separators=(",", ":")).encode("utf-8"))
        return f"{payload}.{self._sign(payload)}"

    def loads(self, value: str | None) -> SessionData | None:
        """The session in `value`, or None when it is missing, tampered, malformed or expired."""
        if not value or len(value) > MAX_COOKIE_CHARS or not value.isascii():
            return None
        payload, _, signature = value.partition(".")
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        try:
            body = json.loads(_b64decode(payload))
            data = SessionData(
                csrf=str(body["c"]),
                issued_at=float(body["t"]),
                operator_hash=None if body["o"] is None else str(body["o"]),
            )
        except (binascii.Error, ValueError, KeyError, TypeError):
            return None
        age = self._clock() - data.issued_at
        if age > self.max_age_seconds or age < -CLOCK_SKEW_SECONDS or not data.csrf:
            return None
        return data


@dataclass(frozen=True)
class CookiePolicy:
    """The names and the Secure flag of the session cookie and the OAuth binding cookie.

    Over https (the callback URL's scheme) both are Secure and `__Host-`-prefixed. Plain http is
    only allowed on loopback, where browsers share cookies across ports: the names then carry
    the port, so two local apps (a demo and a second instance, say) do not overwrite each
    other's sessions.
    """

    secure: bool
    session_name: str
    binding_name: str

    @classmethod
    def for_callback(cls, callback_url: str, *, secure: bool = False) -> CookiePolicy:
        """The policy for an app whose browsers come back at `callback_url`.

        `secure` forces the Secure flag on plain http too (`create_app`'s default, for an app
        behind TLS it does not terminate itself); https always gets it.
        """
        parts = urlsplit(callback_url)
        if parts.scheme == "https":
            return cls(True, HOST_PREFIX + COOKIE_NAME, HOST_PREFIX + BINDING_COOKIE_NAME)
        port = parts.port or 80
        return cls(secure, f"{COOKIE_NAME}_{port}", f"{BINDING_COOKIE_NAME}_{port}")
