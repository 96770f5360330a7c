"""A stolen token ciphertext used under another tenant, and wrong or malformed encryption keys,
through the code a sync and the web app really run (`TenantClients`, the mapping page), on
SQLite and PostgreSQL. Refused means: a clear error, nothing sent to Salesforce with the stolen
token, and no key or token in the message or the page.

What other folders already cover is listed in the table of `security/__init__.py`.
"""

from __future__ import annotations

import base64
import secrets

import pytest
import sqlalchemy as sa

from gtm_pipeline.config import Settings
from gtm_pipeline.connect.tokens import TenantClients
from gtm_pipeline.salesforce.crypto import InvalidKeyError, TokenDecryptError
from gtm_pipeline.store.tables import connector_tokens
from gtm_pipeline_tests.security.attacks import attempt
from gtm_pipeline_tests.support.security import snapshot


def _api_calls(emulator) -> int:
    """Every call the emulator served (OAuth included)."""
    return sum(n for kind, n in emulator.control.stats()["calls"].items() if kind != "total")


def _rows(engine: sa.Engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {
            r["tenant_id"]: dict(r) for r in conn.execute(sa.select(connector_tokens)).mappings()
        }


def _steal(engine: sa.Engine, columns: tuple[str, ...], source: str, target: str) -> None:
    """Copy `columns` of `source`'s token row over `target`'s, as a database thief would."""
    row = _rows(engine)[source]
    with engine.begin() as conn:
        conn.execute(
            sa.update(connector_tokens)
            .where(connector_tokens.c.tenant_id == target)
            .values({c: row[c] for c in columns})
        )


STOLEN = [
    ("access_token_ct", "refresh_token_ct"),
    ("access_token_ct",),
    ("refresh_token_ct",),
    ("access_token_ct", "refresh_token_ct", "key_id", "issued_at", "instance_url"),
]


@pytest.mark.parametrize("columns", STOLEN, ids=["both", "access", "refresh", "whole-row"])
def test_tenant_as_ciphertext_under_tenant_b_is_refused_before_any_call(
    tenants, store_engine, emulator, sf_settings, connect_env, columns
):
    _steal(store_engine, columns, "acme", "globex")
    stolen = _rows(store_engine)["acme"]
    calls = _api_calls(emulator)
    with attempt("crypto: stolen ciphertext"):
        with pytest.raises(TokenDecryptError) as raised:
            TenantClients.from_settings(
                store_engine, Settings(connect_env), salesforce=sf_settings
            ).for_tenant("globex")
        message = str(raised.value)
        assert "globex" in message and "does not belong to this tenant" in message
        assert stolen["access_token_ct"] not in message
        assert connect_env["CONNECTOR_ENCRYPTION_KEY"] not in message
        assert _api_calls(emulator) == calls  # nothing was sent with acme's token
    # acme itself still works: the theft did not damage the source row.
    client = TenantClients.from_settings(
        store_engine, Settings(connect_env), salesforce=sf_settings
    ).for_tenant("acme")
    assert client.describe("Contact")["name"] == "Contact"


def test_the_mapping_page_of_a_tenant_holding_stolen_tokens_refuses_without_leaking(
    web, tenants, make_operator, store_engine, emulator, connect_env
):
    _steal(store_engine, STOLEN[0], "acme", "globex")
    admin = web.login(make_operator())
    before, calls = snapshot(store_engine), _api_calls(emulator)
    with attempt("crypto: stolen ciphertext (web)"):
        answer = admin.get("/connectors/globex/mapping?entity=persons")
        assert answer.status_code == 409 and "connect Salesforce again" in answer.text
        assert _rows(store_engine)["globex"]["access_token_ct"] not in answer.text
        assert connect_env["CONNECTOR_ENCRYPTION_KEY"] not in answer.text
        assert "Traceback" not in answer.text
        assert _api_calls(emulator) == calls and snapshot(store_engine) == before


BAD_KEYS = {
    "empty": "",
    "blank": "   ",
    "short": secrets.token_hex(16),
    "long": secrets.token_hex(33),
    "odd length": secrets.token_hex(32)[:-1],
    "not hex": "zz" * 32,
    "base64 of 32 bytes": base64.b64encode(secrets.token_bytes(32)).decode(),
    "urlsafe base64 of 32 bytes": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    "hex with 0x": "0x" + secrets.token_hex(31),
    "non-ASCII": "é" * 64,
    "with a newline inside": secrets.token_hex(16) + "\n" + secrets.token_hex(16),
}


def test_malformed_keys_are_a_clear_error_naming_the_variable_never_the_value(
    tenants, store_engine, emulator, sf_settings, connect_env
):
    calls = _api_calls(emulator)
    for name, bad in BAD_KEYS.items():
        env = {**connect_env, "CONNECTOR_ENCRYPTION_KEY": bad}
        with attempt("crypto: malformed key"):
            with pytest.raises(InvalidKeyError) as raised:
                TenantClients.from_settings(
                    store_engine, Settings(env), salesforce=sf_settings
                ).for_tenant("acme")
            message = str(raised.value)
            assert "CONNECTOR_ENCRYPTION_KEY" in message, name
            if bad.strip():
                assert bad.strip() not in message, name
            assert _api_calls(emulator) == calls


def test_a_wrong_but_well_formed_key_names_key_ids_never_keys(
    tenants, store_engine, emulator, sf_settings, connect_env
):
    wrong = secrets.token_hex(32)
    env = {**connect_env, "CONNECTOR_ENCRYPTION_KEY": wrong}
    calls = _api_calls(emulator)
    with attempt("crypto: wrong key"):
        with pytest.raises(TokenDecryptError) as raised:
            TenantClients.from_settings(
                store_engine, Settings(env), salesforce=sf_settings
            ).for_tenant("acme")
        message = str(raised.value)
        assert "rotate-key" in message
        assert wrong not in message and connect_env["CONNECTOR_ENCRYPTION_KEY"] not in message
        assert _api_calls(emulator) == calls
