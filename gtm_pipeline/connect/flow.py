"""The OAuth web server flow for one tenant: start, finish (the callback) and disconnect.

`start` signs a state, keeps the PKCE verifier encrypted in `oauth_states` and returns the
authorize URL. `finish` trusts nothing it is handed: the state must carry a valid signature and be
fresh, its nonce is consumed in the store before any network call (so a replayed callback, even at
another process, is refused), and only then is the code exchanged and the signed token answer
stored encrypted. A bad state changes no row; every other failure is recorded on the connector in
plain words, because that is what the operator sees on the connectors page.

Every flow is bound to who started it (`FlowBinding`): the store keeps the SHA-256 of a nonce the
starting browser holds in a cookie, and the operator credential it was logged in with. The
authorize link alone is not enough: forwarded to someone else, whose approval would link *their*
org to the sender's tenant, its callback is refused before any code exchange. A refused callback
still consumes the state, so the same link cannot be tried again with the right cookie once the
victim's browser has carried an authorization code for their org back through it; the operator
who really started it simply starts again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from gtm_pipeline.config import Settings
from gtm_pipeline.connect.vault import StoredTokens, TokenVault
from gtm_pipeline.salesforce.crypto import TokenCipher, TokenDecryptError
from gtm_pipeline.salesforce.oauth import (
    OAuthClient,
    OAuthError,
    TokenResponse,
    new_pkce_pair,
)
from gtm_pipeline.salesforce.oauth_state import (
    StateError,
    StateSigner,
    VerifiedState,
    binding_hash,
    binding_matches,
    new_binding_nonce,
)
from gtm_pipeline.store.connections import (
    ConnectorRow,
    OAuthStateRow,
    consume_oauth_state,
    get_connector,
    insert_oauth_state,
    set_connector_status,
    upsert_connector,
)
from gtm_pipeline.store.tenants import delete_synced_data

log = logging.getLogger(__name__)

MAX_ID_LENGTH = 64  # the store's tenant_id / connector_id columns

# Revoke answers meaning "this token is already dead", which is what disconnect wants anyway.
_ALREADY_REVOKED = frozenset({"invalid_token", "unsupported_token_type", "invalid_grant"})
_REPLAYED = (
    "This connection link was already used or has expired; start the connection again from "
    "the connectors page."
)
_NOT_BOUND = (
    "This connection was started in another browser or by another operator (or its operator "
    "has logged out since), so nothing was connected. To connect, log in to the connectors page "
    "in this browser, click Connect Salesforce there and approve in this same browser."
)


@dataclass(frozen=True)
class FlowBinding:
    """Who may finish a flow: the browser holding `nonce`, as the operator `operator_id`.

    At start it is made fresh (`new`) and its nonce goes into that browser's cookie; at the
    callback it is what the request presents (the cookie, the logged-in operator), either of
    which may be missing. `operator_id` None is a flow started outside the web app, by
    `gtm-pipeline connect` in a terminal, whose own listener holds the nonce.
    """

    nonce: str | None = field(repr=False)
    operator_id: str | None

    @classmethod
    def new(cls, operator_id: str | None) -> FlowBinding:
        return cls(new_binding_nonce(), operator_id)

    def fits(self, pending: OAuthStateRow) -> bool:
        """Whether this is the browser and operator that started the pending flow."""
        same_browser = binding_matches(pending.binding_hash, self.nonce)
        return same_browser and pending.started_by == self.operator_id


@dataclass(frozen=True)
class ConnectOutcome:
    """What a connect step did, for the page or command that shows it.

    `http_status`: 200 done; 400 a bad or replayed state or a refused authorization; 403 the user
    denied access, or the callback came from another browser or operator than the one that
    started the flow; 404 no such connection; 502 Salesforce failed or could not be trusted.
    `tenant_id` is None when no flow of the caller's ran (a bad, replayed or foreign state).
    `status` is the connector's status afterwards (None when nothing was recorded). `message` is
    plain words, safe to show: it never carries a token, code or secret.
    """

    ok: bool
    http_status: int
    tenant_id: str | None
    status: str | None
    message: str


class ConnectFlow:
    """Starts and finishes connections and disconnects tenants, against one store."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        oauth: OAuthClient,
        signer: StateSigner,
        vault: TokenVault,
        callback_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._oauth = oauth
        self._signer = signer
        self._vault = vault
        self._callback_url = callback_url
        self._clock = clock

    def __repr__(self) -> str:
        return f"ConnectFlow(callback_url={self._callback_url!r}, oauth={self._oauth!r})"

    @classmethod
    def from_settings(cls, engine: sa.Engine, settings: Settings) -> ConnectFlow:
        """From a program's settings; a missing or bad variable fails here, by name."""
        return cls(
            engine,
            oauth=OAuthClient(settings.salesforce),
            signer=StateSigner(settings.state_secret),
            vault=TokenVault(TokenCipher.from_settings(settings)),
            callback_url=settings.callback_url,
        )

    @property
    def callback_url(self) -> str:
        return self._callback_url

    @property
    def state_ttl_seconds(self) -> float:
        """How long a started flow can be finished; its binding cookie need not outlive it."""
        return self._signer.ttl_seconds

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)

    # -- start -------------------------------------------------------------------------------

    def start(self, tenant_id: str, connector_id: str, binding: FlowBinding) -> str:
        """The authorize URL for a new connection; remembers the flow and who may finish it."""
        if not binding.nonce:
            raise ValueError("a flow must be bound to a nonce; make one with FlowBinding.new")
        for value, what in ((tenant_id, "tenant_id"), (connector_id, "connector_id")):
            if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
                raise ValueError(f"{what} must be 1 to {MAX_ID_LENGTH} characters")
        state, verified = self._signer.issue(tenant_id, connector_id)
        verifier, challenge = new_pkce_pair()
        issued_at = datetime.fromtimestamp(verified.issued_at, tz=UTC)
        row = OAuthStateRow(
            nonce=verified.nonce,
            tenant_id=tenant_id,
            connector_id=connector_id,
            code_verifier_ct=self._vault.encrypt_verifier(
                verifier, nonce=verified.nonce, tenant_id=tenant_id, connector_id=connector_id
            ),
            redirect_uri=self._callback_url,
            issued_at=issued_at,
            expires_at=issued_at + timedelta(seconds=self._signer.ttl_seconds),
            consumed_at=None,
            binding_hash=binding_hash(binding.nonce),
            started_by=binding.operator_id,
        )
        with self._engine.begin() as conn:
            insert_oauth_state(conn, row)
        return self._oauth.authorize_url(
            redirect_uri=self._callback_url, state=state, code_challenge=challenge
        )

    # -- finish ------------------------------------------------------------------------------

    def finish(self, params: Mapping[str, str], presented: FlowBinding) -> ConnectOutcome:
        """Handle the callback's query parameters; see the module docstring for the order.

        `presented` is the binding the callback request carries; nothing of the flow runs, and
        nothing is recorded on the tenant, unless it is the one the flow was started with.
        """
        try:
            verified = self._signer.verify(params.get("state") or "")
        except StateError as exc:
            return ConnectOutcome(False, 400, None, None, str(exc))
        pending = self._consume(verified)
        if pending is None:
            return ConnectOutcome(False, 400, None, None, _REPLAYED)
        if not presented.fits(pending):
            log.warning(
                "refused a callback for tenant %s: not the browser or operator that started it",
                verified.tenant_id,
            )
            return ConnectOutcome(False, 403, None, None, _NOT_BOUND)
        tenant_id, connector_id = verified.tenant_id, verified.connector_id
        error = params.get("error")
        if error:
            refusal = OAuthError(error[:100], (params.get("error_description") or "")[:300])
            status = 403 if error == "access_denied" else 400
            return self._failed(tenant_id, connector_id, refusal.plain_words(), status)
        code = params.get("code")
        if not code:
            message = "Salesforce sent back no authorization code; start the connection again."
            return self._failed(tenant_id, connector_id, message, 400)
        try:
            verifier = self._vault.decrypt_verifier(pending)
        except TokenDecryptError:
            message = (
                "This connection was started under a different encryption key; start the "
                "connection again."
            )
            return self._failed(tenant_id, connector_id, message, 400)
        try:
            tokens = self._oauth.exchange_code(
                code=code, redirect_uri=pending.redirect_uri, code_verifier=verifier
            )
        except OAuthError as exc:
            log.warning("token exchange for tenant %s failed: %s", tenant_id, exc.error)
            status = 502 if exc.transient or exc.error in ("invalid_response", "tls_error") else 400
            return self._failed(tenant_id, connector_id, exc.plain_words(), status)
        return self._store(tenant_id, connector_id, tokens)

    def _consume(self, verified: VerifiedState) -> OAuthStateRow | None:
        """The pending flow for this state, taken once; None for a replay or an expired flow."""
        with self._engine.begin() as conn:
            row = consume_oauth_state(conn, verified.nonce, self._now())
        if row is None:
            return None
        if (row.tenant_id, row.connector_id) != (verified.tenant_id, verified.connector_id):
            return None  # a signed state and a stored row that disagree: trust neither
        return row

    def _store(self, tenant_id: str, connector_id: str, tokens: TokenResponse) -> ConnectOutcome:
        if tokens.refresh_token is None:
            self._revoke_quietly(tokens.access_token)
            message = (
                "Salesforce issued no refresh token, so the connection could not stay alive: allow "
                "the refresh_token scope on the connected app, then connect again."
            )
            return self._failed(tenant_id, connector_id, message, 502)
        with self._engine.begin() as conn:
            existing = get_connector(conn, tenant_id)
            if existing is not None and _other_org(existing, tokens.org_id):
                mismatch = (
                    f"This tenant is connected to Salesforce org {existing.org_id}, but access "
                    f"was granted for org {tokens.org_id}. Disconnect the tenant first to switch "
                    "orgs."
                )
            else:
                mismatch = None
                if existing is not None and existing.org_id and existing.org_id != tokens.org_id:
                    # A different org: the old org's rows and cursors must not survive, or the
                    # next incremental sync would start from the old org's position.
                    removed = delete_synced_data(conn, tenant_id)
                    log.info("tenant %s switched orgs; cleared %d synced rows", tenant_id, removed)
                upsert_connector(
                    conn,
                    tenant_id=tenant_id,
                    connector_id=connector_id,
                    instance_url=tokens.instance_url,
                    org_id=tokens.org_id,
                    status="connected",
                    status_detail=None,
                    at=self._now(),
                )
                self._vault.save(
                    conn,
                    StoredTokens(
                        tenant_id=tenant_id,
                        connector_id=connector_id,
                        instance_url=tokens.instance_url,
                        access_token=tokens.access_token,
                        refresh_token=tokens.refresh_token,
                        issued_at=tokens.issued_at,
                    ),
                )
        if mismatch is not None:
            self._revoke_quietly(tokens.refresh_token)
            return self._failed(tenant_id, connector_id, mismatch, 400)
        log.info("tenant %s connected to Salesforce org %s", tenant_id, tokens.org_id)
        return ConnectOutcome(
            True,
            200,
            tenant_id,
            "connected",
            f"Connected: tenant {tenant_id} now syncs from Salesforce org {tokens.org_id}.",
        )

    def _failed(
        self, tenant_id: str, connector_id: str, message: str, http_status: int
    ) -> ConnectOutcome:
        """Record a failed attempt on the connector; a working connection stays connected."""
        with self._engine.begin() as conn:
            existing = get_connector(conn, tenant_id)
            if existing is None:
                upsert_connector(
                    conn,
                    tenant_id=tenant_id,
                    connector_id=connector_id,
                    instance_url=None,
                    org_id=None,
                    status="failed",
                    status_detail=message,
                    at=self._now(),
                )
                status = "failed"
            elif existing.status == "connected":
                # Its stored tokens still work; a refused re-consent must not stop its syncs.
                status = "connected"
                detail = f"The last attempt to reconnect failed: {message}"
                set_connector_status(conn, tenant_id, status, detail, at=self._now())
            else:
                status = "failed"
                set_connector_status(conn, tenant_id, status, message, at=self._now())
        return ConnectOutcome(False, http_status, tenant_id, status, message)

    # -- disconnect --------------------------------------------------------------------------

    def disconnect(self, tenant_id: str) -> ConnectOutcome:
        """Revoke at Salesforce, delete the ciphertext, mark `disconnected`.

        Runs with the token row locked, so a refresh cannot store new tokens behind it. The local
        tokens are deleted even when Salesforce cannot be reached; the outcome then says so.
        """
        with self._engine.begin() as conn:
            connector = get_connector(conn, tenant_id)
            if connector is None:
                return ConnectOutcome(
                    False, 404, tenant_id, None, f"Tenant {tenant_id} has no Salesforce connection."
                )
            problem = self._revoke_stored(conn, tenant_id)
            self._vault.delete(conn, tenant_id)
            set_connector_status(conn, tenant_id, "disconnected", problem, at=self._now())
        if problem is not None:
            log.warning("tenant %s disconnected locally; revoke failed", tenant_id)
            return ConnectOutcome(False, 502, tenant_id, "disconnected", problem)
        log.info("tenant %s disconnected", tenant_id)
        return ConnectOutcome(
            True,
            200,
            tenant_id,
            "disconnected",
            f"Disconnected: tenant {tenant_id}'s access was revoked at Salesforce and its stored "
            "tokens were deleted.",
        )

    def _revoke_stored(self, conn: sa.Connection, tenant_id: str) -> str | None:
        """Revoke the stored refresh token; None when done (or nothing to do), else why not."""
        try:
            stored = self._vault.load(conn, tenant_id, for_update=True)
        except TokenDecryptError:
            return (
                "The stored tokens could not be decrypted, so they were deleted without being "
                "revoked at Salesforce; revoke the app's access in Salesforce Setup."
            )
        if stored is None:
            return None
        try:
            self._oauth.revoke(stored.refresh_token or stored.access_token)
        except OAuthError as exc:
            if exc.error in _ALREADY_REVOKED:
                return None
            return (
                "The stored tokens were deleted, but Salesforce did not confirm the revocation "
                f"({exc.plain_words()}) Revoke the app's access in Salesforce Setup to be sure."
            )
        return None

    def _revoke_quietly(self, token: str) -> None:
        """Best effort: a token we will not keep should not stay alive at Salesforce."""
        try:
            self._oauth.revoke(token)
        except OAuthError as exc:
            log.warning("could not revoke an unused token: %s", exc.error)


def _other_org(existing: ConnectorRow, org_id: str) -> bool:
    """Whether granting `org_id` would mix a second org's data into a live connection."""
    live = existing.status not in ("disconnected", "failed")
    return bool(existing.org_id) and existing.org_id != org_id and live
