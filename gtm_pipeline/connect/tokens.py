"""Access tokens that stay valid: proactive and on-demand refresh, once per tenant everywhere.

A refresh takes the tenant's token row under a store lock (`SELECT ... FOR UPDATE` on
PostgreSQL; on SQLite every store transaction starts with `BEGIN IMMEDIATE`, which is already a
cross-process write lock) and holds it while it calls Salesforce. Whoever comes second finds a
different access token than the one that was refused and simply uses it, so however many threads
and processes hit an expired session at once, Salesforce sees one refresh. That matters beyond
politeness: with refresh-token rotation, a second refresh with the old token would fail and
disconnect the tenant.

An `invalid_grant` means the user or an admin revoked the app, or the refresh token expired: no
retry can fix it, so the connector is marked `reconnect_needed` and every later call fails fast
without calling Salesforce until someone reconnects.

The instance URL credentials are handed out with passes the OAuth client's destination check
(a Salesforce domain unless SALESFORCE_ALLOW_ANY_INSTANCE=1) whether it was just refreshed or
stored long ago, so an access token never leaves for a host the settings do not trust.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from gtm_pipeline.config import DEFAULT_LIFETIME_SECONDS, SalesforceSettings, Settings
from gtm_pipeline.connect.vault import StoredTokens, TokenVault
from gtm_pipeline.salesforce.client import ClientConfig, Credentials, SalesforceClient
from gtm_pipeline.salesforce.crypto import TokenCipher
from gtm_pipeline.salesforce.errors import SalesforceUnavailable, SessionInvalid
from gtm_pipeline.salesforce.oauth import (
    UNTRUSTED_INSTANCE,
    InvalidGrant,
    OAuthClient,
    OAuthError,
)
from gtm_pipeline.store.connections import (
    get_connector,
    set_connector_status,
)

log = logging.getLogger(__name__)

RECONNECT_MESSAGE = (
    "Salesforce no longer accepts this connection's refresh token (invalid_grant): access was "
    "revoked or expired. Reconnect the tenant from the connectors page."
)


class TokenProvider:
    """Credentials for one tenant, refreshed when old or refused. Thread- and process-safe."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        tenant_id: str,
        vault: TokenVault,
        oauth: OAuthClient,
        lifetime_seconds: float = DEFAULT_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not lifetime_seconds > 0:
            raise ValueError("lifetime_seconds must be positive")
        self._engine = engine
        self.tenant_id = tenant_id
        self._vault = vault
        self._oauth = oauth
        self.lifetime_seconds = float(lifetime_seconds)
        self._clock = clock

    def __repr__(self) -> str:
        return f"TokenProvider(tenant_id={self.tenant_id!r}, lifetime={self.lifetime_seconds:g}s)"

    def credentials(self) -> Credentials:
        """The stored credentials, refreshed first when older than the session lifetime."""
        with self._engine.begin() as conn:
            self._ensure_usable(conn)
            stored = self._load(conn, for_update=False)
        age = self._clock() - stored.issued_at.timestamp()
        if age < self.lifetime_seconds:
            return self._credentials(stored)
        log.info("access token of tenant %s is %.0fs old; refreshing", self.tenant_id, age)
        return self._refresh_unless_done(stored.access_token)

    def refresh(self, refused: Credentials) -> Credentials:
        """The SalesforceClient's refresh hook: fresh credentials after `refused` was rejected."""
        return self._refresh_unless_done(refused.access_token)

    def _refresh_unless_done(self, stale_access_token: str) -> Credentials:
        """Refresh under the row lock, unless someone replaced `stale_access_token` meanwhile."""
        with self._engine.begin() as conn:
            stored = self._load(conn, for_update=True)
            if not hmac.compare_digest(stored.access_token, stale_access_token):
                return self._credentials(stored)  # another thread or process already refreshed
            self._ensure_usable(conn)
            try:
                fresh = self._oauth.refresh(stored.refresh_token or "")
            except InvalidGrant:
                set_connector_status(conn, self.tenant_id, "reconnect_needed", RECONNECT_MESSAGE)
                revoked = True
            except OAuthError as exc:
                raise _refresh_failure(exc) from None
            else:
                revoked = False
                renewed = StoredTokens(
                    tenant_id=stored.tenant_id,
                    connector_id=stored.connector_id,
                    instance_url=fresh.instance_url,
                    access_token=fresh.access_token,
                    refresh_token=fresh.refresh_token or stored.refresh_token,
                    issued_at=fresh.issued_at,
                )
                self._vault.save(conn, renewed)
        # Outside the block, so the reconnect_needed status above is committed, not rolled back.
        if revoked:
            log.warning("tenant %s needs to reconnect: refresh token refused", self.tenant_id)
            raise SessionInvalid(RECONNECT_MESSAGE)
        log.info(
            "refreshed the access token of tenant %s (refresh token rotated: %s)",
            self.tenant_id,
            fresh.refresh_token is not None,
        )
        return self._credentials(renewed)

    def _credentials(self, stored: StoredTokens) -> Credentials:
        """The stored credentials, unless their instance URL is not one tokens may go to."""
        try:
            self._oauth.check_token_destination(stored.instance_url)
        except OAuthError as exc:
            raise SessionInvalid(
                f"Tenant {self.tenant_id}'s stored instance URL is refused: {exc.plain_words()}"
            ) from None
        return Credentials(instance_url=stored.instance_url, access_token=stored.access_token)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)

    def _load(self, conn: sa.Connection, *, for_update: bool) -> StoredTokens:
        stored = self._vault.load(conn, self.tenant_id, for_update=for_update)
        if stored is None:
            raise SessionInvalid(
                f"Tenant {self.tenant_id} has no stored Salesforce tokens; connect it first"
            )
        return stored

    def _ensure_usable(self, conn: sa.Connection) -> None:
        """Fail fast for a connection known to be dead, instead of asking Salesforce again."""
        connector = get_connector(conn, self.tenant_id)
        if connector is None:
            raise SessionInvalid(
                f"Tenant {self.tenant_id} has no Salesforce connection; connect it"
            )
        if connector.status in ("reconnect_needed", "disconnected"):
            detail = f": {connector.status_detail}" if connector.status_detail else ""
            raise SessionInvalid(
                f"Tenant {self.tenant_id}'s Salesforce connection is {connector.status}{detail}"
            )


def _refresh_failure(exc: OAuthError) -> Exception:
    """The client-layer error for a refresh that failed for a reason other than a dead grant."""
    if exc.transient:
        return SalesforceUnavailable(f"Could not refresh the Salesforce access token: {exc}")
    if exc.error == UNTRUSTED_INSTANCE:
        return SessionInvalid(f"The token refresh was not used: {exc.plain_words()}")
    return SessionInvalid(f"Salesforce refused the token refresh: {exc}. {exc.plain_words()}")


@dataclass(frozen=True)
class TenantClients:
    """The one way to a connected tenant's org, made once where a program starts (the CLI, the
    web app, the Dagster resource) from its settings, then asked for any tenant's client."""

    engine: sa.Engine
    settings: SalesforceSettings
    cipher: TokenCipher = field(repr=False)
    lifetime_seconds: float = DEFAULT_LIFETIME_SECONDS
    config: ClientConfig | None = None
    """Tuning (batch size, usage guard, retries); None: the defaults with the settings' API
    version and CA bundle."""
    clock: Callable[[], float] = time.time

    @classmethod
    def from_settings(
        cls,
        engine: sa.Engine,
        settings: Settings,
        *,
        salesforce: SalesforceSettings | None = None,
        config: ClientConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> TenantClients:
        """From a program's settings: SALESFORCE_* (unless `salesforce` is given), the
        encryption key, the session lifetime."""
        return cls(
            engine,
            salesforce or settings.salesforce,
            TokenCipher.from_settings(settings),
            settings.session_lifetime,
            config,
            clock,
        )

    def for_tenant(self, tenant_id: str) -> SalesforceClient:
        """A SalesforceClient for a connected tenant whose tokens refresh themselves."""
        settings = self.settings
        provider = TokenProvider(
            self.engine,
            tenant_id=tenant_id,
            vault=TokenVault(self.cipher),
            oauth=OAuthClient(settings),
            lifetime_seconds=self.lifetime_seconds,
            clock=self.clock,
        )
        config = self.config or ClientConfig(
            api_version=settings.api_version, ca_bundle=settings.ca_bundle
        )
        with self.engine.connect() as conn:
            connector = get_connector(conn, tenant_id)
        org_id = connector.org_id if connector is not None else None
        return SalesforceClient(
            provider.credentials(), config=config, refresh=provider.refresh, org_id=org_id
        )
