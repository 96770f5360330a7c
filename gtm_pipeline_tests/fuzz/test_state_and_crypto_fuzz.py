"""Properties of the signed OAuth state (salesforce/oauth_state.py) and of the token cipher
(salesforce/crypto.py): any change to what was issued or sealed is refused.

- States for any printable tenant and connector ids verify back to those ids; any sequence of
  edits (insertions, deletions, replacements, anywhere, several at once) that changes the state
  is refused with StateError, and so is any text that was not issued.
- Tokens round-trip under `token_aad(tenant, connector)` for any ids; any edit of the stored
  base64 text, and any splice of IV, tag and ciphertext from two tokens, is refused with
  TokenDecryptError (never a different plaintext, never another exception).

Extends salesforce/test_oauth_state.py::test_any_single_character_change_is_refused and
salesforce/test_crypto.py::test_any_single_byte_flip_is_refused, test_any_other_aad_is_refused,
test_arbitrary_text_never_decrypts, test_round_trip_for_any_text (single changes, raw bytes) with
several edits at once at the text level and splices between tokens.
"""

from __future__ import annotations

import base64
import secrets

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gtm_pipeline.salesforce.crypto import (
    IV_LENGTH,
    TAG_LENGTH,
    TokenCipher,
    TokenDecryptError,
    token_aad,
)
from gtm_pipeline.salesforce.oauth_state import StateError, StateSigner
from gtm_pipeline_tests.fuzz.examples import ran
from gtm_pipeline_tests.fuzz.settings import fuzz
from gtm_pipeline_tests.secret_scan import remember

NOW = 1_767_225_600.0
_STATE_SECRET, _KEY = secrets.token_urlsafe(32), secrets.token_hex(32)
SIGNER = StateSigner(_STATE_SECRET, clock=lambda: NOW)
CIPHER = TokenCipher(_KEY)
# Made at import, before the secret scan's instrumentation runs: registered by hand.
remember("state secret", _STATE_SECRET)
remember("encryption key", _KEY)
ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters=":"),
    min_size=1,
    max_size=40,
).filter(str.isprintable)


@st.composite
def edits(draw, original: str) -> str:
    """`original` after one to five edits at random places."""
    text = original
    for _ in range(draw(st.integers(1, 5))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "swap"]))
        piece = draw(st.text(min_size=1, max_size=4))
        if action == "insert":
            text = text[:position] + piece + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 8)) :]
        elif action == "replace":
            text = text[:position] + piece + text[position + len(piece) :]
        elif action == "truncate":
            text = text[:position]
        elif len(text) > 1:
            a, b = sorted((position % len(text), draw(st.integers(0, len(text) - 1))))
            text = text[:a] + text[b] + text[a + 1 : b] + text[a] + text[b + 1 :]
    return text


@fuzz
@given(tenant=ids, connector=ids)
def test_states_round_trip_for_any_ids(tenant, connector):
    ran("state: round trip")
    try:
        state, issued = SIGNER.issue(tenant, connector)
    except ValueError as exc:  # ids too long for a state: refused at issue, in plain words
        assert "too long" in str(exc)
        return
    verified = SIGNER.verify(state)
    assert (verified.tenant_id, verified.connector_id, verified.nonce) == (
        tenant, connector, issued.nonce,
    )  # fmt: skip


@fuzz
@given(data=st.data(), tenant=ids)
def test_any_edited_state_is_refused(data, tenant):
    ran("state: edits refused")
    state, _ = SIGNER.issue(tenant, "salesforce")
    edited = data.draw(edits(state), label="edited")
    assume(edited != state)
    with pytest.raises(StateError):
        SIGNER.verify(edited)


@fuzz
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.from_regex(r"[A-Za-z0-9_-]{1,120}\.[A-Za-z0-9_-]{1,60}", fullmatch=True),
    )
)
def test_text_that_was_not_issued_never_verifies(text):
    ran("state: foreign text refused")
    with pytest.raises(StateError):
        SIGNER.verify(text)


@fuzz
@given(plaintext=st.text(max_size=300), tenant=ids, connector=ids)
def test_tokens_round_trip_under_any_row_binding(plaintext, tenant, connector):
    ran("crypto: round trip")
    aad = token_aad(tenant, connector)
    assert CIPHER.decrypt(CIPHER.encrypt(plaintext, aad=aad), aad=aad) == plaintext


@fuzz
@given(data=st.data(), plaintext=st.text(max_size=64))
def test_any_edited_token_is_refused(data, plaintext):
    ran("crypto: edits refused")
    aad = token_aad("acme", "salesforce")
    token = CIPHER.encrypt(plaintext, aad=aad)
    edited = data.draw(edits(token), label="edited")
    assume(edited != token)
    with pytest.raises(TokenDecryptError):
        CIPHER.decrypt(edited, aad=aad)


@fuzz
@given(first=st.text(max_size=40), second=st.text(max_size=40),
       parts=st.tuples(st.booleans(), st.booleans(), st.booleans()))  # fmt: skip
def test_splices_of_two_tokens_are_refused(first, second, parts):
    ran("crypto: splices refused")
    aad = token_aad("acme", "salesforce")
    a = base64.b64decode(CIPHER.encrypt(first, aad=aad))
    b = base64.b64decode(CIPHER.encrypt(second, aad=aad))
    cut = (0, IV_LENGTH, IV_LENGTH + TAG_LENGTH, None)
    pieces = [(b if from_b else a)[cut[i] : cut[i + 1]] for i, from_b in enumerate(parts)]
    raw = b"".join(pieces)
    spliced = base64.b64encode(raw).decode()
    if raw in (a, b):  # all parts from one token (or two empty ciphertexts): that token itself
        assert CIPHER.decrypt(spliced, aad=aad) == (first if raw == a else second)
        return
    with pytest.raises(TokenDecryptError):
        CIPHER.decrypt(spliced, aad=aad)
