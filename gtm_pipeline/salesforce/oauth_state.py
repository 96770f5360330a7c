"""The signed OAuth `state` parameter: who started the connection, when, and a one-time nonce.

Format: `base64url(payload) "." base64url(HMAC-SHA256(secret, payload))`, unpadded, where the
payload is the UTF-8 text `tenantId:connectorId\\nissuedAtMillis\\nnonce`. The signature proves
the state came from this server; the issue time bounds how long a leaked link stays usable; the
nonce makes every state unique so the store can refuse a second use (single use lives in the
store, see `gtm_pipeline.store.connections.consume_oauth_state`, because only a shared database can
see a replay that arrives at another process).

Every refusal is a `StateError` whose message is safe to show the person in the browser: it says
what to do, never echoes the state, and does not reveal which byte failed.

The state travels in the authorize URL, so whoever holds the link holds it. The *binding nonce*
below is what stays behind: a second random value the starting browser keeps in a cookie while
the store keeps only its SHA-256, so a link forwarded to another browser cannot finish the flow.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from gtm_pipeline.config import MIN_STATE_SECRET_LENGTH
from gtm_pipeline.errors import GtmError
from gtm_pipeline.salesforce.crypto import token_aad

MAX_STATE_LENGTH = 1024
DEFAULT_TTL_SECONDS = 600.0
# A state "issued" further in the future than this was not made by a server with a sane clock.
MAX_CLOCK_SKEW_SECONDS = 60.0
NONCE_BYTES = 24
# 256 bits: far beyond guessing, and the same strength as the operator tokens.
BINDING_NONCE_BYTES = 32
MAX_BINDING_NONCE_CHARS = 256
_MAC_LENGTH = 32
_START_AGAIN = "start the connection again from the connectors page"


class StateError(GtmError, ValueError):
    """The OAuth state is unusable; the message is meant for the user and carries no input."""

    retryable = False


@dataclass(frozen=True)
class VerifiedState:
    """What a valid state vouches for."""

    tenant_id: str
    connector_id: str
    nonce: str
    issued_at: float


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    """Strict unpadded base64url; any non-canonical spelling counts as tampering."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise StateError(f"The connection link is malformed; {_START_AGAIN}.") from None
    if _b64url(raw) != text:
        raise StateError(f"The connection link is malformed; {_START_AGAIN}.")
    return raw


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    if not value.isprintable():
        raise ValueError(f"{what} must not contain control characters")
    return value


class StateSigner:
    """Issues and verifies states with HMAC-SHA256 keyed by `CLERK_SECRET_KEY`."""

    __slots__ = ("_clock", "_key", "ttl_seconds")

    def __init__(
        self,
        secret: str,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(secret, str) or len(secret) < MIN_STATE_SECRET_LENGTH:
            raise ValueError(
                f"the state secret (CLERK_SECRET_KEY) must be at least "
                f"{MIN_STATE_SECRET_LENGTH} characters"
            )
        if not ttl_seconds > 0:
            raise ValueError("ttl_seconds must be positive")
        self._key = secret.encode("utf-8")
        self.ttl_seconds = float(ttl_seconds)
        self._clock = clock

    def __repr__(self) -> str:
        return f"StateSigner(ttl_seconds={self.ttl_seconds})"

    def __reduce__(self) -> tuple:
        raise TypeError("StateSigner holds a secret and cannot be pickled")

    def issue(self, tenant_id: str, connector_id: str) -> tuple[str, VerifiedState]:
        """A fresh signed state and what it vouches for (the caller stores the nonce)."""
        aad = token_aad(_check_id(tenant_id, "tenant_id"), _check_id(connector_id, "connector_id"))
        issued_ms = int(self._clock() * 1000)
        nonce = secrets.token_urlsafe(NONCE_BYTES)
        payload = f"{aad}\n{issued_ms}\n{nonce}".encode()
        state = f"{_b64url(payload)}.{_b64url(self._mac(payload))}"
        if len(state) > MAX_STATE_LENGTH:
            raise ValueError("tenant_id and connector_id are too long to fit in an OAuth state")
        return state, VerifiedState(tenant_id, connector_id, nonce, issued_ms / 1000)

    def verify(self, state: str) -> VerifiedState:
        """The verified contents, or StateError for anything not issued here and still fresh."""
        payload = self._authentic_payload(state)
        verified = _parse_payload(payload)
        age = self._clock() - verified.issued_at
        if age > self.ttl_seconds:
            raise StateError(f"The connection link expired; {_START_AGAIN}.")
        if age < -MAX_CLOCK_SKEW_SECONDS:
            raise StateError(f"The connection link is not valid yet; {_START_AGAIN}.")
        return verified

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def _authentic_payload(self, state: object) -> bytes:
        if not isinstance(state, str) or not state:
            raise StateError(f"The connection link has no state; {_START_AGAIN}.")
        if len(state) > MAX_STATE_LENGTH:
            raise StateError(f"The connection link is too long; {_START_AGAIN}.")
        if not state.isascii():
            raise StateError(f"The connection link is malformed; {_START_AGAIN}.")
        encoded_payload, dot, encoded_mac = state.partition(".")
        if not dot or not encoded_payload or not encoded_mac:
            raise StateError(f"The connection link is malformed; {_START_AGAIN}.")
        payload = _unb64url(encoded_payload)
        mac = _unb64url(encoded_mac)
        # Compare before looking inside: unauthenticated bytes are never parsed.
        if len(mac) != _MAC_LENGTH or not hmac.compare_digest(mac, self._mac(payload)):
            raise StateError(f"The connection link was altered or is not ours; {_START_AGAIN}.")
        return payload


def _parse_payload(payload: bytes) -> VerifiedState:
    """Parse a payload we signed; failures here mean a secret shared with an older format."""
    malformed = StateError(f"The connection link is malformed; {_START_AGAIN}.")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise malformed from None
    parts = text.split("\n")
    if len(parts) != 3:
        raise malformed
    ids, issued, nonce = parts
    tenant_id, colon, connector_id = ids.partition(":")
    if not colon or not tenant_id or not connector_id or not nonce or not issued.isdigit():
        raise malformed
    return VerifiedState(tenant_id, connector_id, nonce, int(issued) / 1000)


def new_binding_nonce() -> str:
    """A fresh browser-binding nonce for the cookie of the browser that starts a flow."""
    return secrets.token_urlsafe(BINDING_NONCE_BYTES)


def binding_hash(nonce: str) -> str:
    """SHA-256 hex of a binding nonce: what the store keeps, so a database copy cannot forge it."""
    return hashlib.sha256(nonce.encode("ascii")).hexdigest()


def binding_matches(stored_hash: str | None, presented: object) -> bool:
    """True only when `presented` is the nonce whose hash was stored; constant-time compare.

    A flow stored without a hash (started before binding existed) matches nothing.
    """
    if not stored_hash or not isinstance(presented, str) or not presented:
        return False
    if len(presented) > MAX_BINDING_NONCE_CHARS or not presented.isascii():
        return False
    return hmac.compare_digest(binding_hash(presented), stored_hash)
