"""Settings read from the environment, validated once, with errors that name the variable.

Only the variables a command actually needs are read, so `gtm-pipeline emulator` does not
demand an encryption key. Values of secret variables never appear in messages or reprs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_LOGIN_URL = "https://login.salesforce.com"
DEFAULT_API_VERSION = "59.0"


class ConfigError(ValueError):
    """A setting is missing or malformed. The message names the variable, never its value."""


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def gtm_home(environ: Mapping[str, str] | None = None) -> Path:
    """Where local state lives (SQLite store, emulator state, Dagster home): `GTM_HOME`."""
    return Path(_env(environ).get("GTM_HOME") or ".gtm").expanduser().resolve()


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """`DATABASE_URL`, or a SQLite file under `GTM_HOME`.

    `postgres://` and `postgresql://` are mapped to the psycopg 3 driver so a URL copied from a
    hosting provider works as is.
    """
    raw = (_env(environ).get("DATABASE_URL") or "").strip()
    if not raw:
        return f"sqlite:///{gtm_home(environ) / 'warehouse.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix) :]
    if raw.startswith(("sqlite:", "postgresql+")):
        return raw
    raise ConfigError(
        "DATABASE_URL must be a sqlite:/// or postgresql:// URL (got an unsupported scheme)"
    )


def api_version(environ: Mapping[str, str] | None = None) -> str:
    """`SALESFORCE_API_VERSION`, like 59.0."""
    raw = (_env(environ).get("SALESFORCE_API_VERSION") or DEFAULT_API_VERSION).strip()
    raw = raw.removeprefix("v")
    major, _, minor = raw.partition(".")
    if not (major.isdigit() and (minor == "" or minor.isdigit()) and int(major) >= 20):
        raise ConfigError("SALESFORCE_API_VERSION must look like 59.0")
    return f"{int(major)}.{int(minor or 0)}"


def ca_bundle(environ: Mapping[str, str] | None = None) -> str | None:
    """`SALESFORCE_CA_BUNDLE`: a CA file that must verify Salesforce's TLS certificate, if set."""
    raw = (_env(environ).get("SALESFORCE_CA_BUNDLE") or "").strip()
    if not raw:
        return None
    if not Path(raw).is_file():
        raise ConfigError("SALESFORCE_CA_BUNDLE must name an existing CA certificate file")
    return raw


def login_url(environ: Mapping[str, str] | None = None) -> str:
    """`SALESFORCE_LOGIN_URL`, default https://login.salesforce.com."""
    raw = (_env(environ).get("SALESFORCE_LOGIN_URL") or DEFAULT_LOGIN_URL).strip().rstrip("/")
    if not raw.startswith("https://"):
        raise ConfigError("SALESFORCE_LOGIN_URL must be an https:// URL")
    return raw


@dataclass(frozen=True)
class SalesforceSettings:
    """Connection settings shared by the client and the OAuth flow."""

    login_url: str = DEFAULT_LOGIN_URL
    api_version: str = DEFAULT_API_VERSION
    ca_bundle: str | None = None
    client_id: str = ""
    client_secret: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SalesforceSettings:
        env = _env(environ)
        return cls(
            login_url=login_url(env),
            api_version=api_version(env),
            ca_bundle=ca_bundle(env),
            client_id=(env.get("SALESFORCE_CLIENT_ID") or "").strip(),
            client_secret=(env.get("SALESFORCE_CLIENT_SECRET") or "").strip(),
        )


DEFAULT_CALLBACK_URL = "http://127.0.0.1:8765/api/connectors/salesforce/callback"
MIN_STATE_SECRET_LENGTH = 32


def callback_url(environ: Mapping[str, str] | None = None) -> str:
    """`SALESFORCE_CALLBACK_URL`: where Salesforce sends the user back after consent.

    It must match the connected app's callback URL exactly. https, or http on loopback only
    (Salesforce itself allows plain http for localhost callbacks and nothing else).
    """
    raw = (_env(environ).get("SALESFORCE_CALLBACK_URL") or DEFAULT_CALLBACK_URL).strip()
    loopback = raw.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))
    if not (raw.startswith("https://") or loopback):
        raise ConfigError(
            "SALESFORCE_CALLBACK_URL must be an https:// URL (http:// only on 127.0.0.1/localhost)"
        )
    return raw


def state_secret(environ: Mapping[str, str] | None = None) -> str:
    """`CLERK_SECRET_KEY`: the HMAC key that signs the OAuth state."""
    raw = (_env(environ).get("CLERK_SECRET_KEY") or "").strip()
    if len(raw) < MIN_STATE_SECRET_LENGTH:
        raise ConfigError(
            f"CLERK_SECRET_KEY must be set to a random string of at least "
            f"{MIN_STATE_SECRET_LENGTH} characters"
        )
    return raw


def encryption_key_hex(
    environ: Mapping[str, str] | None = None, variable: str = "CONNECTOR_ENCRYPTION_KEY"
) -> str:
    """The AES-256 key for tokens at rest: exactly 64 hex characters (32 bytes)."""
    raw = (_env(environ).get(variable) or "").strip()
    if len(raw) != 64 or any(c not in "0123456789abcdefABCDEF" for c in raw):
        raise ConfigError(f"{variable} must be exactly 64 hex characters (a 32-byte key)")
    return raw.lower()
