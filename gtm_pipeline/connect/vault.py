"""The token vault: a tenant's OAuth tokens encrypted on the way into the store, checked on the
way out.

Each token is sealed with AES-256-GCM under the associated data `tenantId:connectorId`
(`gtm_pipeline.salesforce.crypto`), so the database only ever holds ciphertext, and a ciphertext
pasted into another tenant's row refuses to open rather than handing one tenant another's org.
The PKCE verifier kept in `oauth_states` is sealed the same way, bound to its nonce as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from gtm_pipeline.errors import GtmError
from gtm_pipeline.salesforce.crypto import TokenCipher, TokenDecryptError, token_aad
from gtm_pipeline.store.connections import (
    OAuthStateRow,
    TokenRow,
    delete_token_row,
    get_connector,
    load_token_row,
    save_token_row,
)
from gtm_pipeline.store.types import ensure_aware_utc


class IncompleteTokensError(GtmError, LookupError):
    """Stored tokens lack the instance URL they belong to; the tenant must reconnect."""

    retryable = False


@dataclass(frozen=True)
class StoredTokens:
    """A tenant's decrypted tokens. The tokens themselves never show in a repr."""

    tenant_id: str
    connector_id: str
    instance_url: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    issued_at: datetime


def verifier_aad(tenant_id: str, connector_id: str, nonce: str) -> str:
    """AAD for a PKCE verifier: the token AAD extended with a purpose and the state's nonce.

    Token AADs never contain a third colon-separated part, so a verifier ciphertext can never
    be mistaken for a token, nor moved to another flow's row.
    """
    if not isinstance(nonce, str) or not nonce:
        raise ValueError("nonce must be a non-empty string")
    return f"{token_aad(tenant_id, connector_id)}:pkce:{nonce}"


class TokenVault:
    """Encrypts and decrypts a tenant's tokens around the store's token repository."""

    def __init__(self, cipher: TokenCipher) -> None:
        if not isinstance(cipher, TokenCipher):
            raise TypeError(f"cipher must be a TokenCipher, got {type(cipher).__name__}")
        self._cipher = cipher

    def __repr__(self) -> str:
        return f"TokenVault(key_id={self._cipher.key_id!r})"

    @property
    def key_id(self) -> str:
        return self._cipher.key_id

    def save(self, conn: sa.Connection, tokens: StoredTokens) -> None:
        """Encrypt and store (replacing the tenant's previous tokens) in the caller's transaction.

        The tenant's connector row must exist (`upsert_connector`), else UnknownTenantError.
        """
        if not isinstance(tokens, StoredTokens):
            raise TypeError(f"tokens must be StoredTokens, got {type(tokens).__name__}")
        if not tokens.instance_url:
            raise ValueError("tokens.instance_url must be set: tokens are useless without it")
        if not tokens.access_token:
            raise ValueError("tokens.access_token must be a non-empty string")
        aad = token_aad(tokens.tenant_id, tokens.connector_id)
        refresh_ct = (
            None
            if tokens.refresh_token is None
            else self._cipher.encrypt(tokens.refresh_token, aad=aad)
        )
        save_token_row(
            conn,
            TokenRow(
                tenant_id=tokens.tenant_id,
                connector_id=tokens.connector_id,
                access_token_ct=self._cipher.encrypt(tokens.access_token, aad=aad),
                refresh_token_ct=refresh_ct,
                issued_at=ensure_aware_utc(tokens.issued_at, "issued_at"),
                key_id=self._cipher.key_id,
                instance_url=tokens.instance_url,
            ),
        )

    def load(
        self, conn: sa.Connection, tenant_id: str, *, for_update: bool = False
    ) -> StoredTokens | None:
        """The tenant's tokens, None if it has none, TokenDecryptError if they do not open.

        With `for_update` the row stays locked until the caller's transaction ends, which is how
        concurrent refreshes for one tenant queue behind each other.
        """
        row = load_token_row(conn, tenant_id, for_update=for_update)
        if row is None:
            return None
        aad = token_aad(row.tenant_id, row.connector_id)
        access = self._open(row.access_token_ct, aad, row)
        refresh = (
            None if row.refresh_token_ct is None else self._open(row.refresh_token_ct, aad, row)
        )
        return StoredTokens(
            tenant_id=row.tenant_id,
            connector_id=row.connector_id,
            instance_url=self._instance_url(conn, row),
            access_token=access,
            refresh_token=refresh,
            issued_at=row.issued_at,
        )

    def delete(self, conn: sa.Connection, tenant_id: str) -> bool:
        """Forget the tenant's tokens; True if there were any."""
        return delete_token_row(conn, tenant_id)

    def encrypt_verifier(
        self, verifier: str, *, tenant_id: str, connector_id: str, nonce: str
    ) -> str:
        """Seal a PKCE code verifier for the `oauth_states` row with this nonce."""
        return self._cipher.encrypt(verifier, aad=verifier_aad(tenant_id, connector_id, nonce))

    def decrypt_verifier(
        self,
        row_or_ciphertext: OAuthStateRow | str,
        *,
        tenant_id: str | None = None,
        connector_id: str | None = None,
        nonce: str | None = None,
    ) -> str:
        """Open a PKCE verifier: pass the consumed `OAuthStateRow`, or the ciphertext plus the
        three ids it was sealed with. TokenDecryptError when it does not open."""
        if isinstance(row_or_ciphertext, OAuthStateRow):
            row = row_or_ciphertext
            ciphertext = row.code_verifier_ct
            tenant_id, connector_id, nonce = row.tenant_id, row.connector_id, row.nonce
        else:
            ciphertext = row_or_ciphertext
            if tenant_id is None or connector_id is None or nonce is None:
                raise TypeError("pass tenant_id, connector_id and nonce with a bare ciphertext")
        return self._cipher.decrypt(ciphertext, aad=verifier_aad(tenant_id, connector_id, nonce))

    def _open(self, ciphertext: str, aad: str, row: TokenRow) -> str:
        try:
            return self._cipher.decrypt(ciphertext, aad=aad)
        except TokenDecryptError:
            hint = (
                f"they were sealed with key {row.key_id}, not the current key "
                f"{self._cipher.key_id} (was CONNECTOR_ENCRYPTION_KEY rotated without "
                "`gtm-pipeline rotate-key`?)"
                if row.key_id != self._cipher.key_id
                else "the ciphertext does not belong to this tenant's row or was altered"
            )
            raise TokenDecryptError(
                f"the stored tokens of tenant {row.tenant_id!r} could not be decrypted: {hint}"
            ) from None

    @staticmethod
    def _instance_url(conn: sa.Connection, row: TokenRow) -> str:
        if row.instance_url:
            return row.instance_url
        connector = get_connector(conn, row.tenant_id)
        if connector is not None and connector.instance_url:
            return connector.instance_url
        raise IncompleteTokensError(
            f"the stored tokens of tenant {row.tenant_id!r} have no instance URL; reconnect it"
        )
