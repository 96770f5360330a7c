"""Encryption of OAuth tokens at rest: AES-256-GCM, laid out the way the Node services expect.

A stored token is `base64(iv[12] + tag[16] + ciphertext)`, the layout Node code produces with
`crypto.createCipheriv("aes-256-gcm", key, iv)`, `setAAD(...)`, `update`/`final` and
`getAuthTag()`. The associated data is `tenantId:connectorId`, so a ciphertext copied into another
tenant's row fails authentication instead of silently serving the wrong org's tokens.

Every way a token can fail to open (wrong key, wrong tenant, truncated, altered, not base64) raises
the one `TokenDecryptError`: callers need one branch, and the message never says which check
failed in a way that would help an attacker, nor does it carry key or token material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gtm_pipeline.errors import GtmError

if TYPE_CHECKING:
    from gtm_pipeline.config import Settings

KEY_VARIABLE = "CONNECTOR_ENCRYPTION_KEY"
KEY_HEX_LENGTH = 64
IV_LENGTH = 12
TAG_LENGTH = 16
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# Domain separation: the fingerprint can never equal any other hash of the key we might publish.
_KEY_ID_CONTEXT = b"gtm-pipeline/token-key-id/v1\x00"


class TokenDecryptError(GtmError):
    """A stored token could not be decrypted and authenticated; nothing usable came out."""

    retryable = False


class InvalidKeyError(GtmError, ValueError):
    """The encryption key is missing or malformed. The message names the variable only."""

    retryable = False


def token_aad(tenant_id: str, connector_id: str) -> str:
    """The associated data binding a ciphertext to its row: `tenantId:connectorId`.

    Colons inside either id are refused: with them two different rows could share one AAD
    ("a:b" + "c" versus "a" + "b:c") and a ciphertext could move between them, and other
    AADs built by extending this one (see the vault's PKCE verifier) could collide with it.
    """
    for value, what in ((tenant_id, "tenant_id"), (connector_id, "connector_id")):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{what} must be a non-empty string")
        if ":" in value:
            raise ValueError(f"{what} must not contain ':' (it separates the parts of the AAD)")
    return f"{tenant_id}:{connector_id}"


def _parse_key(key_hex: object, variable: str) -> bytes:
    if not isinstance(key_hex, str):
        raise InvalidKeyError(f"{variable} must be a string of 64 hex characters (a 32-byte key)")
    candidate = key_hex.strip()
    if len(candidate) != KEY_HEX_LENGTH or not set(candidate) <= _HEX_DIGITS:
        raise InvalidKeyError(f"{variable} must be exactly 64 hex characters (a 32-byte key)")
    return bytes.fromhex(candidate)


def _utf8(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text (it holds a lone surrogate)") from None


class TokenCipher:
    """AES-256-GCM with a fresh random IV per encryption; the raw key never leaves this object."""

    __slots__ = ("_aead", "key_id")

    def __init__(self, key_hex: str, *, variable: str = KEY_VARIABLE) -> None:
        key = _parse_key(key_hex, variable)
        self._aead = AESGCM(key)
        self.key_id: str = hashlib.sha256(_KEY_ID_CONTEXT + key).hexdigest()[:12]

    @classmethod
    def from_settings(cls, settings: Settings, *, variable: str = KEY_VARIABLE) -> TokenCipher:
        """The cipher for the key in `variable` (default CONNECTOR_ENCRYPTION_KEY) of a
        program's settings."""
        raw = settings.secret(variable)
        if raw is None:
            raise InvalidKeyError(f"{variable} is not set; it must be 64 hex characters")
        return cls(raw, variable=variable)

    def __repr__(self) -> str:
        return f"TokenCipher(key_id={self.key_id!r})"

    def __reduce__(self) -> tuple:
        # Pickling would copy the key into wherever the pickle goes (task queues, caches, logs).
        raise TypeError("TokenCipher holds a key and cannot be pickled")

    def encrypt(self, plaintext: str, *, aad: str) -> str:
        """`base64(iv + tag + ciphertext)` of the UTF-8 plaintext, authenticated with `aad`."""
        data = _utf8(plaintext, "plaintext")
        associated = _utf8(aad, "aad")
        iv = os.urandom(IV_LENGTH)
        sealed = self._aead.encrypt(iv, data, associated)  # ciphertext || tag
        ciphertext, tag = sealed[:-TAG_LENGTH], sealed[-TAG_LENGTH:]
        return base64.b64encode(iv + tag + ciphertext).decode("ascii")

    def decrypt(self, token: str, *, aad: str) -> str:
        """The plaintext, or TokenDecryptError when the token does not open under key and aad."""
        associated = _utf8(aad, "aad")
        raw = _decode_token(token)
        iv, tag, ciphertext = (
            raw[:IV_LENGTH],
            raw[IV_LENGTH : IV_LENGTH + TAG_LENGTH],
            raw[IV_LENGTH + TAG_LENGTH :],
        )
        try:
            data = self._aead.decrypt(iv, ciphertext + tag, associated)
        except InvalidTag:
            raise TokenDecryptError(
                "the stored token could not be decrypted: wrong key, wrong tenant/connector, "
                "or the ciphertext was altered"
            ) from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            # Authentic but not text: written by something other than a token writer.
            raise TokenDecryptError(
                "the stored token decrypted to bytes that are not UTF-8"
            ) from None


def _decode_token(token: object) -> bytes:
    """Strict, canonical base64 only: a token that re-encodes differently was tampered with."""
    if not isinstance(token, str):
        raise TokenDecryptError(f"a stored token must be a str, got {type(token).__name__}")
    if not token.isascii():
        raise TokenDecryptError("the stored token is not base64")
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        raise TokenDecryptError("the stored token is not base64") from None
    if base64.b64encode(raw).decode("ascii") != token:
        raise TokenDecryptError("the stored token is not canonical base64")
    if len(raw) < IV_LENGTH + TAG_LENGTH:
        raise TokenDecryptError("the stored token is truncated")
    return raw
