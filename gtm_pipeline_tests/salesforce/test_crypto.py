"""Token encryption: Node-compatible both ways; every bad input refused, never garbled."""

from __future__ import annotations

import base64
import json
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gtm_pipeline.config import Settings
from gtm_pipeline.salesforce.crypto import (
    IV_LENGTH,
    TAG_LENGTH,
    InvalidKeyError,
    TokenCipher,
    TokenDecryptError,
    token_aad,
)

FIXTURES = Path(__file__).resolve().parents[1] / "connect" / "fixtures"
NODE_VECTORS = json.loads((FIXTURES / "node_vectors.json").read_text(encoding="utf-8"))["vectors"]
NODE_SCRIPT = FIXTURES / "make_node_vectors.js"
KEY = "8f" * 32
OTHER_KEY = "a1" * 32
AAD = "acme:salesforce"
SAMPLE_PLAINTEXT = "00D000000000001!AQ4AQSuperSecretAccessTokenValue"

cipher = TokenCipher(KEY)


def _flip_byte(token: str, index: int) -> str:
    raw = bytearray(base64.b64decode(token))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode("ascii")


# --- Node compatibility ----------------------------------------------------------------------


def test_the_committed_vectors_cover_the_interesting_plaintexts() -> None:
    plaintexts = [vector["plaintext"] for vector in NODE_VECTORS]
    assert "" in plaintexts
    assert any(not text.isascii() for text in plaintexts)
    assert any(len(text) >= 1000 for text in plaintexts)
    assert len({vector["key_hex"] for vector in NODE_VECTORS}) >= 2


@pytest.mark.parametrize(
    "vector", NODE_VECTORS, ids=lambda v: f"{v['aad'][:20]}-{len(v['plaintext'])}"
)
def test_python_decrypts_what_node_encrypted(vector: dict[str, str]) -> None:
    node_cipher = TokenCipher(vector["key_hex"])
    assert node_cipher.decrypt(vector["token"], aad=vector["aad"]) == vector["plaintext"]
    assert token_aad(vector["tenant_id"], vector["connector_id"]) == vector["aad"]
    raw = base64.b64decode(vector["token"])
    assert raw[:IV_LENGTH].hex() == vector["iv_hex"]  # the IV leads, as Node laid it out
    assert len(raw) == IV_LENGTH + TAG_LENGTH + len(vector["plaintext"].encode("utf-8"))


@pytest.mark.parametrize("vector", NODE_VECTORS[:3], ids=lambda v: v["aad"])
def test_node_vectors_refuse_another_tenant(vector: dict[str, str]) -> None:
    with pytest.raises(TokenDecryptError):
        TokenCipher(vector["key_hex"]).decrypt(vector["token"], aad="someone-else:salesforce")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_decrypts_what_python_encrypted() -> None:
    plaintexts = ["", "ascii token", "Grüße 世界 🚀", "z" * 5000, SAMPLE_PLAINTEXT]
    requests = [
        {"key_hex": KEY, "aad": f"tenant-{i}:salesforce", "plaintext": text}
        for i, text in enumerate(plaintexts)
    ]
    for request in requests:
        request["token"] = cipher.encrypt(request["plaintext"], aad=request["aad"])
    # One tampered request proves Node really authenticates what it is given.
    tampered = dict(requests[1], token=_flip_byte(requests[1]["token"], IV_LENGTH + 3))
    lines = "".join(
        json.dumps({k: r[k] for k in ("key_hex", "aad", "token")}) + "\n"
        for r in [*requests, tampered]
    )
    completed = subprocess.run(  # noqa: S603 - fixed argv, our own script
        ["node", str(NODE_SCRIPT), "--decrypt"],  # noqa: S607
        input=lines,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answers = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [a.get("plaintext") for a in answers[:-1]] == plaintexts
    assert "plaintext" not in answers[-1] and answers[-1]["error"]


def test_the_generator_script_reproduces_the_committed_vectors() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    completed = subprocess.run(  # noqa: S603
        ["node", str(NODE_SCRIPT)],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    regenerated = json.loads(completed.stdout)["vectors"]
    assert regenerated == NODE_VECTORS


# --- layout and randomness ---------------------------------------------------------------------


def test_layout_is_iv_then_tag_then_ciphertext() -> None:
    token = cipher.encrypt("hello", aad=AAD)
    raw = base64.b64decode(token, validate=True)
    assert len(raw) == IV_LENGTH + TAG_LENGTH + len("hello")
    assert cipher.decrypt(token, aad=AAD) == "hello"


def test_every_encryption_uses_a_fresh_iv() -> None:
    tokens = [cipher.encrypt("same plaintext", aad=AAD) for _ in range(50)]
    ivs = {base64.b64decode(t)[:IV_LENGTH] for t in tokens}
    assert len(ivs) == 50
    assert len(set(tokens)) == 50


# --- refusals --------------------------------------------------------------------------------


def test_wrong_key_is_refused() -> None:
    token = cipher.encrypt(SAMPLE_PLAINTEXT, aad=AAD)
    with pytest.raises(TokenDecryptError) as raised:
        TokenCipher(OTHER_KEY).decrypt(token, aad=AAD)
    assert SAMPLE_PLAINTEXT not in str(raised.value) and KEY not in str(raised.value)


def test_wrong_tenant_is_refused() -> None:
    token = cipher.encrypt(SAMPLE_PLAINTEXT, aad=token_aad("acme", "salesforce"))
    with pytest.raises(TokenDecryptError):
        cipher.decrypt(token, aad=token_aad("globex", "salesforce"))
    with pytest.raises(TokenDecryptError):
        cipher.decrypt(token, aad=token_aad("acme", "salesforce-sandbox"))


@pytest.mark.parametrize("keep", [0, 1, IV_LENGTH, IV_LENGTH + TAG_LENGTH - 1])
def test_truncated_below_the_header_is_refused(keep: int) -> None:
    raw = base64.b64decode(cipher.encrypt(SAMPLE_PLAINTEXT, aad=AAD))
    with pytest.raises(TokenDecryptError):
        cipher.decrypt(base64.b64encode(raw[:keep]).decode(), aad=AAD)


def test_truncated_ciphertext_is_refused() -> None:
    raw = base64.b64decode(cipher.encrypt(SAMPLE_PLAINTEXT, aad=AAD))
    for keep in range(IV_LENGTH + TAG_LENGTH, len(raw)):
        with pytest.raises(TokenDecryptError):
            cipher.decrypt(base64.b64encode(raw[:keep]).decode(), aad=AAD)


def test_appended_bytes_are_refused() -> None:
    raw = base64.b64decode(cipher.encrypt(SAMPLE_PLAINTEXT, aad=AAD))
    with pytest.raises(TokenDecryptError):
        cipher.decrypt(base64.b64encode(raw + b"\x00").decode(), aad=AAD)


@pytest.mark.parametrize(
    "garbage",
    ["", "not base64 at all!", "====", "QUJD", "é" * 40, " " + "A" * 40, "A" * 41, "\x00" * 44],
)
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(TokenDecryptError):
        cipher.decrypt(garbage, aad=AAD)


def test_non_canonical_base64_is_refused() -> None:
    token = cipher.encrypt("abcd", aad=AAD)  # 32 bytes -> ends with one '=' and slack bits
    assert token.endswith("=")
    last = token[-2]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = alphabet[alphabet.index(last) ^ 0x01]  # differs only in the ignored low bits
    tampered = token[:-2] + twin + "="
    assert base64.b64decode(tampered) == base64.b64decode(token)
    with pytest.raises(TokenDecryptError):
        cipher.decrypt(tampered, aad=AAD)


def test_non_string_token_is_refused() -> None:
    with pytest.raises(TokenDecryptError):
        cipher.decrypt(b"QUJD", aad=AAD)  # type: ignore[arg-type]
    with pytest.raises(TokenDecryptError):
        cipher.decrypt(None, aad=AAD)  # type: ignore[arg-type]


def test_lone_surrogates_are_a_clear_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        cipher.encrypt("\ud800", aad=AAD)


# --- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    ["", "ab" * 31, "ab" * 32 + "a", "ab" * 33, "zz" * 32, "0x" + "ab" * 31, "ab" * 16],
)
def test_malformed_keys_name_the_variable_never_the_value(bad: str) -> None:
    with pytest.raises(InvalidKeyError) as raised:
        TokenCipher(bad)
    message = str(raised.value)
    assert "CONNECTOR_ENCRYPTION_KEY" in message
    assert "64 hex" in message
    if bad:
        assert bad not in message


def test_the_error_names_the_variable_it_was_given() -> None:
    with pytest.raises(InvalidKeyError, match="CONNECTOR_ENCRYPTION_KEY_NEW"):
        TokenCipher("short", variable="CONNECTOR_ENCRYPTION_KEY_NEW")


def test_non_string_key_is_refused() -> None:
    with pytest.raises(InvalidKeyError):
        TokenCipher(bytes(32))  # type: ignore[arg-type]


def test_upper_case_hex_is_the_same_key() -> None:
    token = cipher.encrypt("x", aad=AAD)
    assert TokenCipher(KEY.upper()).decrypt(token, aad=AAD) == "x"
    assert TokenCipher(KEY.upper()).key_id == cipher.key_id


def test_from_env() -> None:
    assert (
        TokenCipher.from_settings(Settings({"CONNECTOR_ENCRYPTION_KEY": KEY})).key_id
        == cipher.key_id
    )
    with pytest.raises(InvalidKeyError, match="CONNECTOR_ENCRYPTION_KEY is not set"):
        TokenCipher.from_settings(Settings({}))
    with pytest.raises(InvalidKeyError, match="CONNECTOR_ENCRYPTION_KEY must be exactly"):
        TokenCipher.from_settings(Settings({"CONNECTOR_ENCRYPTION_KEY": "abc"}))
    other = TokenCipher.from_settings(Settings({"K2": OTHER_KEY}), variable="K2")
    assert other.key_id != cipher.key_id


def test_key_id_is_a_short_fingerprint_that_is_not_the_key() -> None:
    assert len(cipher.key_id) == 12
    assert cipher.key_id not in KEY
    assert TokenCipher(KEY).key_id == cipher.key_id
    assert TokenCipher(OTHER_KEY).key_id != cipher.key_id


def test_no_key_material_in_repr_or_pickle() -> None:
    assert repr(cipher) == f"TokenCipher(key_id={cipher.key_id!r})"
    assert KEY not in repr(cipher) and KEY not in str(cipher)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(cipher)


# --- AAD -------------------------------------------------------------------------------------


def test_token_aad() -> None:
    assert token_aad("acme", "salesforce") == "acme:salesforce"
    for tenant, connector in [("", "salesforce"), ("acme", ""), ("a:b", "c"), ("a", "b:c")]:
        with pytest.raises(ValueError):
            token_aad(tenant, connector)


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(plaintext=st.text(), aad=st.text())
def test_round_trip_for_any_text(plaintext: str, aad: str) -> None:
    assert cipher.decrypt(cipher.encrypt(plaintext, aad=aad), aad=aad) == plaintext


@settings(max_examples=200, deadline=None)
@given(plaintext=st.text(max_size=64), aad=st.text(max_size=32), data=st.data())
def test_any_single_byte_flip_is_refused(plaintext: str, aad: str, data: st.DataObject) -> None:
    token = cipher.encrypt(plaintext, aad=aad)
    raw = bytearray(base64.b64decode(token))
    index = data.draw(st.integers(0, len(raw) - 1), label="index")
    mask = data.draw(st.integers(1, 255), label="mask")
    raw[index] ^= mask
    with pytest.raises(TokenDecryptError):
        cipher.decrypt(base64.b64encode(bytes(raw)).decode(), aad=aad)


@settings(max_examples=100, deadline=None)
@given(plaintext=st.text(max_size=64), aad=st.text(max_size=32), other=st.text(max_size=32))
def test_any_other_aad_is_refused(plaintext: str, aad: str, other: str) -> None:
    assume(other != aad)
    token = cipher.encrypt(plaintext, aad=aad)
    with pytest.raises(TokenDecryptError):
        cipher.decrypt(token, aad=other)


@settings(max_examples=100, deadline=None)
@given(token=st.text(max_size=120))
def test_arbitrary_text_never_decrypts(token: str) -> None:
    with pytest.raises(TokenDecryptError):
        cipher.decrypt(token, aad=AAD)
