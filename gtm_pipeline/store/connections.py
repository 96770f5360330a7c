"""Repositories for connecting tenants: connectors, token ciphertexts, OAuth states, operators.

SQL only: tokens arrive and leave as ciphertext (encryption lives in `gtm_pipeline.connect.vault`).
Every function runs in the caller's transaction and never commits, so a flow can register a
connector and store its tokens atomically. Concurrency guarantees come from the database itself:
`consume_oauth_state` is a single conditional UPDATE, and `load_token_row(for_update=True)` takes
a row lock on PostgreSQL (on SQLite the store's `BEGIN IMMEDIATE` already serialises writers).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gtm_pipeline.store.errors import StoreError
from gtm_pipeline.store.tables import (
    CONNECTOR_STATUSES,
    connector_tokens,
    connectors,
    oauth_states,
    operator_credentials,
)
from gtm_pipeline.store.types import ensure_aware_utc


class UnknownTenantError(StoreError, LookupError):
    """The tenant has no connector row, so there is nothing to update or attach tokens to."""

    retryable = False


@dataclass(frozen=True)
class ConnectorRow:
    tenant_id: str
    connector_id: str
    instance_url: str | None
    org_id: str | None
    status: str
    status_detail: str | None
    connected_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class TokenRow:
    """One tenant's token ciphertexts and the fingerprint of the key that sealed them."""

    tenant_id: str
    connector_id: str
    access_token_ct: str = field(repr=False)
    refresh_token_ct: str | None = field(repr=False)
    issued_at: datetime
    key_id: str
    instance_url: str | None = None


@dataclass(frozen=True)
class OAuthStateRow:
    nonce: str
    tenant_id: str
    connector_id: str
    code_verifier_ct: str = field(repr=False)
    redirect_uri: str
    issued_at: datetime
    expires_at: datetime
    consumed_at: datetime | None = None
    # SHA-256 hex of the nonce cookie of the browser that started the flow (see connect/flow.py).
    binding_hash: str | None = field(default=None, repr=False)
    # The operator credential that started it; None for `connect` in a terminal.
    started_by: str | None = None


@dataclass(frozen=True)
class OperatorRow:
    """A web-app credential. `tenant_id` None means an admin who sees every tenant."""

    credential_id: str
    token_hash: str = field(repr=False)
    tenant_id: str | None
    label: str
    created_at: datetime
    revoked_at: datetime | None = None
    # Browser sessions signed before this moment are refused (set when the operator logs out).
    sessions_valid_after: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.tenant_id is None

    def accepts_session_issued_at(self, issued_at: datetime) -> bool:
        """Whether a session signed at `issued_at` outlived no logout of this credential."""
        valid_after = self.sessions_valid_after
        return valid_after is None or ensure_aware_utc(issued_at, "issued_at") >= valid_after


def _now() -> datetime:
    return datetime.now(UTC)


def _checked_status(status: str) -> str:
    if status not in CONNECTOR_STATUSES:
        raise ValueError(f"connector status must be one of {', '.join(CONNECTOR_STATUSES)}")
    return status


def _require(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    return value


def _upsert_statement(conn: sa.Connection, table: sa.Table) -> Any:
    """An INSERT that can take ON CONFLICT, in the connection's dialect."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"the connector store supports SQLite and PostgreSQL, not {dialect}")


# --- connectors -----------------------------------------------------------------------------


def upsert_connector(
    conn: sa.Connection,
    *,
    tenant_id: str,
    connector_id: str,
    instance_url: str | None,
    org_id: str | None,
    status: str,
    status_detail: str | None = None,
    at: datetime | None = None,
) -> ConnectorRow:
    """Register or update a tenant's connector.

    `instance_url` and `org_id` given as None keep the stored values: a failed reconnect should
    not erase where the tenant's org lives. `connected_at` moves only when the status is
    `connected`, so it reads as "connected since".
    """
    now = _now() if at is None else ensure_aware_utc(at, "at")
    values = {
        "tenant_id": _require(tenant_id, "tenant_id"),
        "connector_id": _require(connector_id, "connector_id"),
        "instance_url": instance_url,
        "org_id": org_id,
        "status": _checked_status(status),
        "status_detail": status_detail,
        "connected_at": now if status == "connected" else None,
        "updated_at": now,
    }
    insert = _upsert_statement(conn, connectors).values(**values)
    excluded = insert.excluded
    statement = insert.on_conflict_do_update(
        index_elements=[connectors.c.tenant_id],
        set_={
            "connector_id": excluded.connector_id,
            "instance_url": sa.func.coalesce(excluded.instance_url, connectors.c.instance_url),
            "org_id": sa.func.coalesce(excluded.org_id, connectors.c.org_id),
            "status": excluded.status,
            "status_detail": excluded.status_detail,
            "connected_at": sa.func.coalesce(excluded.connected_at, connectors.c.connected_at),
            "updated_at": excluded.updated_at,
        },
    )
    conn.execute(statement)
    return _written_connector(conn, tenant_id)


def _written_connector(conn: sa.Connection, tenant_id: str) -> ConnectorRow:
    row = get_connector(conn, tenant_id)
    if row is None:  # pragma: no cover - written earlier in this same transaction
        raise StoreError("the connector row vanished right after it was written")
    return row


def set_connector_status(
    conn: sa.Connection,
    tenant_id: str,
    status: str,
    detail: str | None = None,
    *,
    at: datetime | None = None,
) -> ConnectorRow:
    """Change an existing connector's status; UnknownTenantError when the tenant has none."""
    now = _now() if at is None else ensure_aware_utc(at, "at")
    values: dict[str, Any] = {
        "status": _checked_status(status),
        "status_detail": detail,
        "updated_at": now,
    }
    if status == "connected":
        values["connected_at"] = now
    result = conn.execute(
        sa.update(connectors).where(connectors.c.tenant_id == tenant_id).values(**values)
    )
    if result.rowcount == 0:
        raise UnknownTenantError(f"tenant {tenant_id!r} has no connector; connect it first")
    return _written_connector(conn, tenant_id)


def get_connector(conn: sa.Connection, tenant_id: str) -> ConnectorRow | None:
    row = conn.execute(sa.select(connectors).where(connectors.c.tenant_id == tenant_id)).first()
    return None if row is None else ConnectorRow(**row._mapping)


def list_connectors(
    conn: sa.Connection, tenant_ids: Iterable[str] | None = None
) -> list[ConnectorRow]:
    """Every connector ordered by tenant, or only those in `tenant_ids` (an empty list: none)."""
    query = sa.select(connectors).order_by(connectors.c.tenant_id)
    if tenant_ids is not None:
        wanted = list(tenant_ids)
        if not wanted:
            return []
        query = query.where(connectors.c.tenant_id.in_(wanted))
    return [ConnectorRow(**row._mapping) for row in conn.execute(query)]


# --- token ciphertexts ----------------------------------------------------------------------


def save_token_row(conn: sa.Connection, row: TokenRow) -> None:
    """Store a tenant's token ciphertexts, replacing whatever the tenant had before.

    The connector must be registered first (the row hangs off it by foreign key); failing here
    with a clear error beats a constraint violation that aborts the caller's transaction.
    """
    if not isinstance(row, TokenRow):
        raise TypeError(f"row must be a TokenRow, got {type(row).__name__}")
    if get_connector(conn, row.tenant_id) is None:
        raise UnknownTenantError(
            f"tenant {row.tenant_id!r} has no connector; register it before saving tokens"
        )
    values = {
        "tenant_id": row.tenant_id,
        "connector_id": _require(row.connector_id, "connector_id"),
        "access_token_ct": _require(row.access_token_ct, "access_token_ct"),
        "refresh_token_ct": row.refresh_token_ct,
        "issued_at": ensure_aware_utc(row.issued_at, "issued_at"),
        "key_id": _require(row.key_id, "key_id"),
        "instance_url": row.instance_url,
    }
    # One token row per tenant, whatever connector id it was saved under before.
    conn.execute(
        sa.delete(connector_tokens).where(
            connector_tokens.c.tenant_id == row.tenant_id,
            connector_tokens.c.connector_id != row.connector_id,
        )
    )
    insert = _upsert_statement(conn, connector_tokens).values(**values)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=[connector_tokens.c.tenant_id, connector_tokens.c.connector_id],
            set_={name: insert.excluded[name] for name in values if name not in _TOKEN_KEY},
        )
    )


_TOKEN_KEY = ("tenant_id", "connector_id")


def load_token_row(
    conn: sa.Connection, tenant_id: str, *, for_update: bool = False
) -> TokenRow | None:
    """The tenant's token row; `for_update` locks it until the transaction ends (PostgreSQL).

    SQLite has no row locks; there the store's transactions begin with BEGIN IMMEDIATE, which
    already holds the database write lock for the whole transaction.
    """
    query = sa.select(connector_tokens).where(connector_tokens.c.tenant_id == tenant_id)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else TokenRow(**row._mapping)


def delete_token_row(conn: sa.Connection, tenant_id: str) -> bool:
    """Forget a tenant's tokens; True when there were any."""
    result = conn.execute(
        sa.delete(connector_tokens).where(connector_tokens.c.tenant_id == tenant_id)
    )
    return result.rowcount > 0


# --- OAuth states ---------------------------------------------------------------------------


def insert_oauth_state(conn: sa.Connection, row: OAuthStateRow) -> None:
    """Remember a started flow; a reused nonce is an IntegrityError (nonces are random)."""
    if not isinstance(row, OAuthStateRow):
        raise TypeError(f"row must be an OAuthStateRow, got {type(row).__name__}")
    issued_at = ensure_aware_utc(row.issued_at, "issued_at")
    expires_at = ensure_aware_utc(row.expires_at, "expires_at")
    if expires_at <= issued_at:
        raise ValueError("expires_at must be after issued_at")
    conn.execute(
        sa.insert(oauth_states).values(
            nonce=_require(row.nonce, "nonce"),
            tenant_id=_require(row.tenant_id, "tenant_id"),
            connector_id=_require(row.connector_id, "connector_id"),
            code_verifier_ct=_require(row.code_verifier_ct, "code_verifier_ct"),
            redirect_uri=_require(row.redirect_uri, "redirect_uri"),
            issued_at=issued_at,
            expires_at=expires_at,
            consumed_at=None,
            binding_hash=(
                None
                if row.binding_hash is None
                else _checked_hash(row.binding_hash, "binding_hash")
            ),
            started_by=row.started_by,
        )
    )


def consume_oauth_state(conn: sa.Connection, nonce: str, now: datetime) -> OAuthStateRow | None:
    """Mark the state used and return it, or None if unknown, expired or already used.

    One conditional UPDATE decides: on PostgreSQL a concurrent second UPDATE waits for the
    first's row lock, re-checks `consumed_at IS NULL` and matches nothing; on SQLite the write
    lock serialises them. So exactly one caller ever gets the row.
    """
    moment = ensure_aware_utc(now, "now")
    if not isinstance(nonce, str) or not nonce:
        return None
    statement = (
        sa.update(oauth_states)
        .where(
            oauth_states.c.nonce == nonce,
            oauth_states.c.consumed_at.is_(None),
            oauth_states.c.expires_at > moment,
        )
        .values(consumed_at=moment)
        .returning(*oauth_states.c)
    )
    row = conn.execute(statement).first()
    return None if row is None else OAuthStateRow(**row._mapping)


def delete_expired_oauth_states(conn: sa.Connection, now: datetime) -> int:
    """Drop states that can no longer be used (expired or consumed before `now`)."""
    moment = ensure_aware_utc(now, "now")
    result = conn.execute(
        sa.delete(oauth_states).where(
            sa.or_(oauth_states.c.expires_at <= moment, oauth_states.c.consumed_at.is_not(None))
        )
    )
    return result.rowcount


# --- operator credentials -------------------------------------------------------------------


def operator_token_hash(token: str) -> str:
    """SHA-256 hex of a bearer token: what the store keeps instead of the token itself.

    A fast hash is enough: the tokens are random with >= 128 bits, so there is nothing to
    brute-force, and lookups by hash stay a single indexed equality.
    """
    if not isinstance(token, str) or not token:
        raise ValueError("operator token must be a non-empty string")
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _checked_hash(digest: str, what: str = "token_hash") -> str:
    if (
        not isinstance(digest, str)
        or len(digest) != 64
        or any(c not in "0123456789abcdef" for c in digest)
    ):
        raise ValueError(f"{what} must be the SHA-256 hex digest (64 lowercase hex characters)")
    return digest


def create_operator(
    conn: sa.Connection,
    *,
    token_hash: str,
    tenant_id: str | None,
    label: str,
    at: datetime | None = None,
) -> OperatorRow:
    """Register a credential by its hash; `tenant_id` None makes it an admin credential."""
    if tenant_id is not None:
        _require(tenant_id, "tenant_id")
    row = OperatorRow(
        credential_id=f"op_{secrets.token_hex(8)}",
        token_hash=_checked_hash(token_hash),
        tenant_id=tenant_id,
        label=_require(label, "label"),
        created_at=_now() if at is None else ensure_aware_utc(at, "at"),
    )
    conn.execute(
        sa.insert(operator_credentials).values(
            credential_id=row.credential_id,
            token_hash=row.token_hash,
            tenant_id=row.tenant_id,
            label=row.label,
            created_at=row.created_at,
            revoked_at=None,
        )
    )
    return row


def find_operator(conn: sa.Connection, token_hash: str) -> OperatorRow | None:
    """The active (not revoked) credential with this hash, or None."""
    if not isinstance(token_hash, str):
        return None
    row = conn.execute(
        sa.select(operator_credentials).where(
            operator_credentials.c.token_hash == token_hash,
            operator_credentials.c.revoked_at.is_(None),
        )
    ).first()
    return None if row is None else OperatorRow(**row._mapping)


def revoke_operator(conn: sa.Connection, credential_id: str, at: datetime | None = None) -> bool:
    """Revoke a credential; True if it was active."""
    moment = _now() if at is None else ensure_aware_utc(at, "at")
    result = conn.execute(
        sa.update(operator_credentials)
        .where(
            operator_credentials.c.credential_id == credential_id,
            operator_credentials.c.revoked_at.is_(None),
        )
        .values(revoked_at=moment)
    )
    return result.rowcount > 0


def end_sessions(conn: sa.Connection, credential_id: str, at: datetime) -> bool:
    """Refuse from now on every browser session of this credential signed before `at`.

    Sessions are signed cookies the server keeps no list of, so logging out moves this line
    instead; the credential itself (its bearer token) keeps working. True if the credential exists.
    """
    result = conn.execute(
        sa.update(operator_credentials)
        .where(operator_credentials.c.credential_id == credential_id)
        .values(sessions_valid_after=ensure_aware_utc(at, "at"))
    )
    return result.rowcount > 0


def list_operators(conn: sa.Connection) -> list[OperatorRow]:
    """Every credential, revoked ones included, oldest first."""
    query = sa.select(operator_credentials).order_by(
        operator_credentials.c.created_at, operator_credentials.c.credential_id
    )
    return [OperatorRow(**row._mapping) for row in conn.execute(query)]
