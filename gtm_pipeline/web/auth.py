"""Operator credentials: bearer tokens for API calls, and the signed session a login creates.

Tokens are random, shown once when created, and stored only as their SHA-256 hash, so a copy of
the database does not let anyone in. A credential with no tenant is an admin: it sees every
tenant. A tenant-scoped one sees and acts on its own tenant only; for the others the app answers
404, as if they did not exist.

A browser session is signed, so the server keeps no list of them; logging out instead records
the moment on the credential (`sessions_valid_after`), and every session signed before it is
refused from then on, in every browser, whatever its cookie's own expiry says.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import TypeGuard

import sqlalchemy as sa
from starlette.requests import Request

from gtm_pipeline.store.connections import OperatorRow, end_sessions, find_operator
from gtm_pipeline.store.connections import operator_token_hash as hash_token
from gtm_pipeline.web.session import SessionCodec, SessionData

TOKEN_PREFIX = "gtmop_"  # noqa: S105 - a public prefix, not a secret
MAX_TOKEN_CHARS = 256


def new_operator_token() -> str:
    """A fresh bearer token: 256 random bits, prefixed so it is recognisable in a secret scan."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def plausible_token(token: object) -> TypeGuard[str]:
    """Cheap shape check before hashing whatever a client sent."""
    return isinstance(token, str) and 0 < len(token) <= MAX_TOKEN_CHARS and token.isascii()


@dataclass(frozen=True)
class Operator:
    """Who is calling: the credential's scope, and the browser session when there is one."""

    credential_id: str
    tenant_id: str | None
    label: str
    session: SessionData | None = None

    def __repr__(self) -> str:
        scope = "admin" if self.is_admin else f"tenant={self.tenant_id!r}"
        return f"Operator({self.credential_id!r}, {scope}, label={self.label!r})"

    @property
    def is_admin(self) -> bool:
        return self.tenant_id is None

    def may_access(self, tenant_id: str) -> bool:
        return self.is_admin or tenant_id == self.tenant_id

    def visible_tenant_ids(self) -> list[str] | None:
        """The tenant ids to list, or None for all of them (admin)."""
        return None if self.is_admin else [str(self.tenant_id)]


class AuthFailure(Enum):
    """Why a request has no operator: nothing presented, or something that was refused."""

    MISSING = "missing"
    REFUSED = "refused"


def active_operator(engine: sa.Engine, token_hash: str) -> OperatorRow | None:
    """The credential with this hash, unless it does not exist or was revoked."""
    with engine.connect() as conn:
        row = find_operator(conn, token_hash)
    if row is None or row.revoked_at is not None:
        return None
    return row


def read_session(request: Request, codec: SessionCodec, cookie_name: str) -> SessionData | None:
    return codec.loads(request.cookies.get(cookie_name))


def _moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def session_operator(engine: sa.Engine, session: SessionData) -> OperatorRow | None:
    """The credential a logged-in session speaks for, unless revoked or logged out since."""
    if session.operator_hash is None:
        return None
    row = active_operator(engine, session.operator_hash)
    if row is None or not row.accepts_session_issued_at(_moment(session.issued_at)):
        return None
    return row


_SESSION_TIME_STEP = 1e-6
"""The finest step of a session's issue time as stored (microseconds)."""


def end_browser_sessions(engine: sa.Engine, session: SessionData, now: float) -> None:
    """Log out on the server: this credential's sessions signed before `now` stop working.

    The session logging out ends too even when it claims a later issue time than `now` (the
    codec accepts some clock skew, and app instances' clocks may differ)."""
    row = session_operator(engine, session)
    if row is None:
        return  # not logged in, or already ended: nothing left to end
    ended_at = max(now, session.issued_at + _SESSION_TIME_STEP)
    with engine.begin() as conn:
        end_sessions(conn, row.credential_id, _moment(ended_at))


def _bearer(header: str) -> str | None:
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not plausible_token(token):
        return None
    return token


def authenticate(
    request: Request, engine: sa.Engine, codec: SessionCodec, cookie_name: str
) -> Operator | AuthFailure:
    """The operator behind a bearer token or a logged-in session, re-checked in the store.

    A request that sends an Authorization header is judged by it alone, so a bad token is
    refused even when a valid session cookie rides along. `cookie_name` is the session
    cookie's (see `CookiePolicy`).
    """
    header = request.headers.get("authorization")
    if header is not None:
        token = _bearer(header)
        row = active_operator(engine, hash_token(token)) if token else None
        if row is None:
            return AuthFailure.REFUSED
        return Operator(row.credential_id, row.tenant_id, row.label)
    session = read_session(request, codec, cookie_name)
    if session is None or session.operator_hash is None:
        return AuthFailure.MISSING
    row = session_operator(engine, session)
    if row is None:
        return AuthFailure.REFUSED
    return Operator(row.credential_id, row.tenant_id, row.label, session=session)
