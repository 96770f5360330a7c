"""Settings read from the environment, validated once, with errors that name the variable.

Only the variables a command actually needs are read, so `gtm-pipeline emulator` does not
demand an encryption key. Values of secret variables never appear in messages or reprs.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from gtm_pipeline.errors import GtmError

DEFAULT_LOGIN_URL = "https://login.salesforce.com"
DEFAULT_API_VERSION = "59.0"
ALLOW_ANY_INSTANCE_VARIABLE = "SALESFORCE_ALLOW_ANY_INSTANCE"
# The loopback hosts, by name: plain http is acceptable only where traffic never leaves the
# machine, and only these three are certain to (a name like 127.0.0.1.nip.io is DNS, not loopback).
LOOPBACK_NAMES = frozenset({"localhost"})
LOOPBACK_ADDRESSES = frozenset({ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")})


class ConfigError(GtmError, ValueError):
    """A setting is missing or malformed. The message names the variable, never its value."""

    retryable = False


def environment(environ: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """`environ`, or the process environment: where programs read their settings from."""
    return os.environ if environ is None else environ


_env = environment


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


def allow_any_instance(environ: Mapping[str, str] | None = None) -> bool:
    """`SALESFORCE_ALLOW_ANY_INSTANCE=1`: trust token responses naming any https host.

    Off by default, so an access token only ever goes to a Salesforce domain even when
    SALESFORCE_LOGIN_URL points somewhere wrong. The demo and the tests turn it on for the
    emulator, which serves on 127.0.0.1.
    """
    raw = (_env(environ).get(ALLOW_ANY_INSTANCE_VARIABLE) or "").strip()
    if raw not in ("", "0", "1"):
        raise ConfigError(f"{ALLOW_ANY_INSTANCE_VARIABLE} must be 1 (on) or 0 (off)")
    return raw == "1"


@dataclass(frozen=True)
class SalesforceSettings:
    """Connection settings shared by the client and the OAuth flow."""

    login_url: str = DEFAULT_LOGIN_URL
    api_version: str = DEFAULT_API_VERSION
    ca_bundle: str | None = None
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    allow_any_instance: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SalesforceSettings:
        env = _env(environ)
        return cls(
            login_url=login_url(env),
            api_version=api_version(env),
            ca_bundle=ca_bundle(env),
            client_id=(env.get("SALESFORCE_CLIENT_ID") or "").strip(),
            client_secret=(env.get("SALESFORCE_CLIENT_SECRET") or "").strip(),
            allow_any_instance=allow_any_instance(env),
        )


DEFAULT_BULK_THRESHOLD = 50_000
BULK_THRESHOLD_VARIABLE = "GTM_BULK_THRESHOLD"
DEFAULT_ERROR_RATE = 0.05
ERROR_RATE_VARIABLE = "GTM_QUALITY_ERROR_RATE"


def bulk_threshold(environ: Mapping[str, str] | None = None) -> int:
    """Records above which a full sync reads through Bulk API 2.0 (`GTM_BULK_THRESHOLD`)."""
    raw = (_env(environ).get(BULK_THRESHOLD_VARIABLE) or "").strip()
    if not raw:
        return DEFAULT_BULK_THRESHOLD
    if not raw.isdigit():
        raise ConfigError(f"{BULK_THRESHOLD_VARIABLE} must be a whole number of records, 0 or more")
    return int(raw)


def quality_error_rate(environ: Mapping[str, str] | None = None) -> float:
    """The share of rejected rows above which a gate's finding is an ERROR, else a WARN
    (`GTM_QUALITY_ERROR_RATE`)."""
    raw = (_env(environ).get(ERROR_RATE_VARIABLE) or "").strip()
    if not raw:
        return DEFAULT_ERROR_RATE
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise ConfigError(f"{ERROR_RATE_VARIABLE} must be a number between 0 and 1")
    return value


DEFAULT_CALLBACK_URL = "http://127.0.0.1:8765/api/connectors/salesforce/callback"
MIN_STATE_SECRET_LENGTH = 32


def is_loopback_host(host: str) -> bool:
    """Whether `host` (a bare hostname or IP, no brackets or port) is this machine's loopback.

    Decided by parsing, never by prefix: only `localhost`, 127.0.0.1 and ::1 count, so
    127.0.0.1.nip.io (a public DNS name) or 127.0.0.1@attacker.example (user-info) do not.
    """
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host) in LOOPBACK_ADDRESSES
    except ValueError:
        return False


def callback_url(environ: Mapping[str, str] | None = None) -> str:
    """`SALESFORCE_CALLBACK_URL`: where Salesforce sends the user back after consent.

    It must match the connected app's callback URL exactly. https, or http on loopback only
    (Salesforce itself allows plain http for localhost callbacks and nothing else). A URL with
    user-info (`user@host`) is refused: browsers and parsers disagree on which host it names.
    """
    raw = (_env(environ).get("SALESFORCE_CALLBACK_URL") or DEFAULT_CALLBACK_URL).strip()
    if not _acceptable_callback(raw):
        raise ConfigError(
            "SALESFORCE_CALLBACK_URL must be an https:// URL (http:// only on 127.0.0.1, "
            "localhost or [::1]) without user@ in it"
        )
    return raw


def plain_host(url: str) -> str | None:
    """The host of `url` when its authority is exactly `host` or `host:port`, else None.

    So no user-info (`127.0.0.1@attacker.example`), no malformed port, and nothing that URL
    parsers read two ways (`[::1].attacker.example` is host ::1 to Python, invalid to browsers).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if not host:
        return None
    shown = f"[{host}]" if ":" in host else host
    return host if parts.netloc.lower() in (shown, f"{shown}:{port}") else None


def _acceptable_callback(url: str) -> bool:
    host = plain_host(url)
    scheme = urlsplit(url).scheme
    return host is not None and (scheme == "https" or (scheme == "http" and is_loopback_host(host)))


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
