"""The token vault over a real store: ciphertext only at rest, bound to its tenant's row."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from gtm_pipeline.connect.vault import IncompleteTokensError, StoredTokens, TokenVault
from gtm_pipeline.salesforce.crypto import TokenCipher, TokenDecryptError
from gtm_pipeline.store.connections import OAuthStateRow, UnknownTenantError, upsert_connector
from gtm_pipeline.store.tables import connector_tokens

ISSUED = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
SF = "salesforce"


def _tokens(tenant_id: str) -> StoredTokens:
    return StoredTokens(
        tenant_id=tenant_id,
        connector_id=SF,
        instance_url=f"https://{tenant_id}.my.salesforce.com",
        access_token=f"00D{tenant_id}!AQ4-access-{secrets.token_urlsafe(24)}",
        refresh_token=f"5Aep-refresh-{tenant_id}-{secrets.token_urlsafe(24)}",
        issued_at=ISSUED,
    )


@pytest.fixture()
def key_hex() -> str:
    return secrets.token_hex(32)


@pytest.fixture()
def token_vault(key_hex: str) -> TokenVault:
    return TokenVault(TokenCipher(key_hex))


def _register(engine: sa.Engine, *tenants: str) -> None:
    with engine.begin() as conn:
        for tenant in tenants:
            upsert_connector(
                conn,
                tenant_id=tenant,
                connector_id=SF,
                instance_url=f"https://{tenant}.my.salesforce.com",
                org_id="00D000000000001AAA",
                status="connected",
            )


def _raw_rows(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.select(connector_tokens))]


def test_round_trip(store_engine: sa.Engine, token_vault: TokenVault) -> None:
    _register(store_engine, "acme")
    tokens = _tokens("acme")
    with store_engine.begin() as conn:
        token_vault.save(conn, tokens)
    with store_engine.begin() as conn:
        assert token_vault.load(conn, "acme") == tokens
        assert token_vault.load(conn, "acme", for_update=True) == tokens
        assert token_vault.load(conn, "nobody") is None


def test_only_ciphertext_reaches_the_database(
    store_engine: sa.Engine, token_vault: TokenVault
) -> None:
    _register(store_engine, "acme")
    tokens = _tokens("acme")
    with store_engine.begin() as conn:
        token_vault.save(conn, tokens)
    [row] = _raw_rows(store_engine)
    everything = " ".join(str(value) for value in row.values())
    assert tokens.access_token not in everything
    assert tokens.refresh_token not in everything
    assert row["key_id"] == token_vault.key_id
    assert row["instance_url"] == tokens.instance_url


def test_a_missing_refresh_token_stays_missing(
    store_engine: sa.Engine, token_vault: TokenVault
) -> None:
    _register(store_engine, "acme")
    tokens = StoredTokens("acme", SF, "https://acme.my.salesforce.com", "access-only", None, ISSUED)
    with store_engine.begin() as conn:
        token_vault.save(conn, tokens)
    with store_engine.connect() as conn:
        assert token_vault.load(conn, "acme") == tokens
    assert _raw_rows(store_engine)[0]["refresh_token_ct"] is None


def test_a_ciphertext_copied_into_another_tenants_row_does_not_open(
    store_engine: sa.Engine, token_vault: TokenVault
) -> None:
    _register(store_engine, "acme", "globex")
    acme, globex = _tokens("acme"), _tokens("globex")
    with store_engine.begin() as conn:
        token_vault.save(conn, acme)
        token_vault.save(conn, globex)
    # An attacker with write access to the table pastes acme's ciphertexts into globex's row.
    with store_engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE connector_tokens SET "
                "access_token_ct = (SELECT access_token_ct FROM connector_tokens "
                "WHERE tenant_id = 'acme'), "
                "refresh_token_ct = (SELECT refresh_token_ct FROM connector_tokens "
                "WHERE tenant_id = 'acme') "
                "WHERE tenant_id = 'globex'"
            )
        )
    rows = {row["tenant_id"]: row for row in _raw_rows(store_engine)}
    assert rows["globex"]["access_token_ct"] == rows["acme"]["access_token_ct"]
    with store_engine.connect() as conn:
        with pytest.raises(TokenDecryptError) as raised:
            token_vault.load(conn, "globex")
        assert token_vault.load(conn, "acme") == acme  # the source row still opens
    message = str(raised.value)
    assert "globex" in message and "does not belong to this tenant" in message
    assert acme.access_token not in message and rows["acme"]["access_token_ct"] not in message


def test_only_the_refresh_token_swapped_is_caught_too(
    store_engine: sa.Engine, token_vault: TokenVault
) -> None:
    _register(store_engine, "acme", "globex")
    with store_engine.begin() as conn:
        token_vault.save(conn, _tokens("acme"))
        token_vault.save(conn, _tokens("globex"))
        conn.execute(
            sa.text(
                "UPDATE connector_tokens SET refresh_token_ct = (SELECT refresh_token_ct "
                "FROM connector_tokens WHERE tenant_id = 'acme') WHERE tenant_id = 'globex'"
            )
        )
    with store_engine.connect() as conn, pytest.raises(TokenDecryptError):
        token_vault.load(conn, "globex")


def test_a_changed_connector_id_does_not_open(
    store_engine: sa.Engine, token_vault: TokenVault
) -> None:
    _register(store_engine, "acme")
    with store_engine.begin() as conn:
        token_vault.save(conn, _tokens("acme"))
        conn.execute(sa.text("UPDATE connector_tokens SET connector_id = 'salesforce-sandbox'"))
    with store_engine.connect() as conn, pytest.raises(TokenDecryptError):
        token_vault.load(conn, "acme")


def test_a_different_key_says_which_keys_are_involved(
    store_engine: sa.Engine, token_vault: TokenVault, key_hex: str
) -> None:
    _register(store_engine, "acme")
    tokens = _tokens("acme")
    with store_engine.begin() as conn:
        token_vault.save(conn, tokens)
    other_key = secrets.token_hex(32)
    other = TokenVault(TokenCipher(other_key))
    with store_engine.connect() as conn, pytest.raises(TokenDecryptError) as raised:
        other.load(conn, "acme")
    message = str(raised.value)
    assert token_vault.key_id in message and other.key_id in message
    assert "rotate-key" in message
    for secret in (key_hex, other_key, tokens.access_token, tokens.refresh_token):
        assert secret not in message


def test_saving_needs_a_registered_connector(
    store_engine: sa.Engine, token_vault: TokenVault
) -> None:
    with store_engine.begin() as conn, pytest.raises(UnknownTenantError):
        token_vault.save(conn, _tokens("ghost"))


def test_saving_checks_its_input(store_engine: sa.Engine, token_vault: TokenVault) -> None:
    _register(store_engine, "acme")
    good = _tokens("acme")
    bad_inputs = [
        StoredTokens("acme", SF, "", "a", "r", ISSUED),
        StoredTokens("acme", SF, "https://x", "", "r", ISSUED),
        StoredTokens("acme", SF, "https://x", "a", "r", ISSUED.replace(tzinfo=None)),
        StoredTokens("ac:me", SF, "https://x", "a", "r", ISSUED),
    ]
    with store_engine.begin() as conn:
        for bad in bad_inputs:
            with pytest.raises(ValueError):
                token_vault.save(conn, bad)
        with pytest.raises(TypeError):
            token_vault.save(conn, good.__dict__)  # type: ignore[arg-type]
    assert _raw_rows(store_engine) == []


def test_instance_url_of_rows_written_before_it_was_stored(
    store_engine: sa.Engine, token_vault: TokenVault
) -> None:
    _register(store_engine, "acme")
    with store_engine.begin() as conn:
        token_vault.save(conn, _tokens("acme"))
        conn.execute(sa.text("UPDATE connector_tokens SET instance_url = NULL"))
    with store_engine.connect() as conn:
        assert token_vault.load(conn, "acme").instance_url == "https://acme.my.salesforce.com"
    with store_engine.begin() as conn:
        conn.execute(sa.text("UPDATE connectors SET instance_url = NULL"))
    with store_engine.connect() as conn, pytest.raises(IncompleteTokensError, match="reconnect"):
        token_vault.load(conn, "acme")


def test_delete(store_engine: sa.Engine, token_vault: TokenVault) -> None:
    _register(store_engine, "acme", "globex")
    with store_engine.begin() as conn:
        token_vault.save(conn, _tokens("acme"))
        token_vault.save(conn, _tokens("globex"))
        assert token_vault.delete(conn, "acme") is True
        assert token_vault.delete(conn, "acme") is False
    with store_engine.connect() as conn:
        assert token_vault.load(conn, "acme") is None
        assert token_vault.load(conn, "globex") is not None


# --- PKCE verifiers --------------------------------------------------------------------------


def _state_row(vault: TokenVault, verifier: str, nonce: str, tenant: str = "acme") -> OAuthStateRow:
    return OAuthStateRow(
        nonce=nonce,
        tenant_id=tenant,
        connector_id=SF,
        code_verifier_ct=vault.encrypt_verifier(
            verifier, tenant_id=tenant, connector_id=SF, nonce=nonce
        ),
        redirect_uri="http://127.0.0.1:8765/cb",
        issued_at=ISSUED,
        expires_at=ISSUED.replace(hour=10),
    )


def test_verifier_round_trip_both_call_styles(token_vault: TokenVault) -> None:
    verifier = secrets.token_urlsafe(64)
    row = _state_row(token_vault, verifier, "nonce-1")
    assert verifier not in row.code_verifier_ct and verifier not in repr(row)
    assert token_vault.decrypt_verifier(row) == verifier
    assert (
        token_vault.decrypt_verifier(
            row.code_verifier_ct, tenant_id="acme", connector_id=SF, nonce="nonce-1"
        )
        == verifier
    )
    with pytest.raises(TypeError, match="nonce"):
        token_vault.decrypt_verifier(row.code_verifier_ct, tenant_id="acme", connector_id=SF)


def test_a_verifier_is_bound_to_its_flow(token_vault: TokenVault) -> None:
    row = _state_row(token_vault, "verifier", "nonce-1")
    for tenant, nonce in [("acme", "nonce-2"), ("globex", "nonce-1")]:
        with pytest.raises(TokenDecryptError):
            token_vault.decrypt_verifier(
                row.code_verifier_ct, tenant_id=tenant, connector_id=SF, nonce=nonce
            )


def test_a_verifier_ciphertext_cannot_pose_as_a_token(
    store_engine: sa.Engine, token_vault: TokenVault
) -> None:
    _register(store_engine, "acme")
    row = _state_row(token_vault, "looks-like-a-token", "nonce-1")
    with store_engine.begin() as conn:
        token_vault.save(conn, _tokens("acme"))
        conn.execute(
            sa.update(connector_tokens).values(
                access_token_ct=row.code_verifier_ct, refresh_token_ct=None
            )
        )
    with store_engine.connect() as conn, pytest.raises(TokenDecryptError):
        token_vault.load(conn, "acme")


# --- nothing secret in reprs -----------------------------------------------------------------


def test_reprs_hide_tokens_and_keys(token_vault: TokenVault, key_hex: str) -> None:
    tokens = _tokens("acme")
    texts = [repr(tokens), str(tokens), repr(token_vault)]
    for text in texts:
        assert tokens.access_token not in text
        assert tokens.refresh_token not in text
        assert key_hex not in text
    assert "acme" in repr(tokens) and token_vault.key_id in repr(token_vault)


def test_vault_needs_a_cipher() -> None:
    with pytest.raises(TypeError):
        TokenVault("0" * 64)  # type: ignore[arg-type]
