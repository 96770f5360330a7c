"""A program's settings: read from its environment once, where it starts, and passed down.

`Settings.from_process()` is the one place that reads the process environment; the CLI, the web
app and the Dagster definitions each call it where they start and hand the object (or the values
they need from it) to the code they run. Each setting is validated, with an error that names the
variable, the first time a program asks for it, so `gtm-pipeline emulator` never demands an
encryption key. Values of secret variables never appear in messages or reprs.

The functions below parse one variable each from a mapping of variables (the settings' snapshot,
or a test's dict).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
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


def gtm_home(environ: Mapping[str, str]) -> Path:
    """Where local state lives (SQLite store, emulator state, Dagster home): `GTM_HOME`."""
    return Path(environ.get("GTM_HOME") or ".gtm").expanduser().resolve()


def database_url(environ: Mapping[str, str]) -> str:
    """`DATABASE_URL`, or a SQLite file under `GTM_HOME`.

    `postgres://` and `postgresql://` are mapped to the psycopg 3 driver so a URL copied from a
    hosting provider works as is.
    """
    raw = (environ.get("DATABASE_URL") or "").strip()
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


def checked_api_version(raw: str) -> str:
    """`raw` (`SALESFORCE_API_VERSION`) as Salesforce writes a version, like 59.0."""
    major, _, minor = raw.strip().removeprefix("v").partition(".")
    if not (major.isdigit() and (minor == "" or minor.isdigit()) and int(major) >= 20):
        raise ConfigError("SALESFORCE_API_VERSION must look like 59.0")
    return f"{int(major)}.{int(minor or 0)}"


def checked_ca_bundle(raw: str | None) -> str | None:
    """`raw` (`SALESFORCE_CA_BUNDLE`): a CA file that must verify Salesforce's TLS certificate,
    or None when empty."""
    raw = (raw or "").strip()
    if not raw:
        return None
    if not Path(raw).is_file():
        raise ConfigError("SALESFORCE_CA_BUNDLE must name an existing CA certificate file")
    return raw


def checked_login_url(raw: str) -> str:
    """`raw` (`SALESFORCE_LOGIN_URL`) as an https URL without a trailing slash."""
    raw = raw.strip().rstrip("/")
    if not raw.startswith("https://"):
        raise ConfigError("SALESFORCE_LOGIN_URL must be an https:// URL")
    return raw


def allow_any_instance(environ: Mapping[str, str]) -> bool:
    """`SALESFORCE_ALLOW_ANY_INSTANCE=1`: trust token responses naming any https host.

    Off by default, so an access token only ever goes to a Salesforce domain even when
    SALESFORCE_LOGIN_URL points somewhere wrong. The demo and the tests turn it on for the
    emulator, which serves on 127.0.0.1.
    """
    raw = (environ.get(ALLOW_ANY_INSTANCE_VARIABLE) or "").strip()
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

    def __post_init__(self) -> None:
        """Each value checked (and written as the checks write it) however the settings were
        made, from the environment or from Dagster resource fields: an access token must only
        ever travel over TLS, to a real API version."""
        object.__setattr__(self, "login_url", checked_login_url(self.login_url))
        object.__setattr__(self, "api_version", checked_api_version(self.api_version))
        object.__setattr__(self, "ca_bundle", checked_ca_bundle(self.ca_bundle))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SalesforceSettings:
        """The SALESFORCE_* variables of `environ`, each validated."""
        return cls(
            login_url=environ.get("SALESFORCE_LOGIN_URL") or DEFAULT_LOGIN_URL,
            api_version=environ.get("SALESFORCE_API_VERSION") or DEFAULT_API_VERSION,
            ca_bundle=environ.get("SALESFORCE_CA_BUNDLE"),
            client_id=(environ.get("SALESFORCE_CLIENT_ID") or "").strip(),
            client_secret=(environ.get("SALESFORCE_CLIENT_SECRET") or "").strip(),
            allow_any_instance=allow_any_instance(environ),
        )


DEFAULT_BULK_THRESHOLD = 200_000
"""Read in parallel slices, REST pages outrun a Bulk job's fixed wait (10 s and more) up to about
this many records under Salesforce's latency (benchmarks/results/latency.md); above it one Bulk
job a slice saves most of the API calls."""
BULK_THRESHOLD_VARIABLE = "GTM_BULK_THRESHOLD"
DEFAULT_ERROR_RATE = 0.05
ERROR_RATE_VARIABLE = "GTM_QUALITY_ERROR_RATE"


def bulk_threshold(environ: Mapping[str, str]) -> int:
    """Records above which a full sync reads through Bulk API 2.0 (`GTM_BULK_THRESHOLD`)."""
    raw = (environ.get(BULK_THRESHOLD_VARIABLE) or "").strip()
    if not raw:
        return DEFAULT_BULK_THRESHOLD
    if not raw.isdigit():
        raise ConfigError(f"{BULK_THRESHOLD_VARIABLE} must be a whole number of records, 0 or more")
    return int(raw)


DEFAULT_PARALLEL_READS = 8
MAX_PARALLEL_READS = 10
PARALLEL_READS_VARIABLE = "GTM_PARALLEL_READS"


def parallel_reads(environ: Mapping[str, str]) -> int:
    """Slices a large full read is split into and read at once (`GTM_PARALLEL_READS`, 1 to 10:
    Salesforce keeps at most 10 query cursors of a user open; 1 reads serially)."""
    raw = (environ.get(PARALLEL_READS_VARIABLE) or "").strip()
    if not raw:
        return DEFAULT_PARALLEL_READS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PARALLEL_READS:
        raise ConfigError(
            f"{PARALLEL_READS_VARIABLE} must be a whole number from 1 to {MAX_PARALLEL_READS}"
        )
    return int(raw)


def quality_error_rate(environ: Mapping[str, str]) -> float:
    """The share of rejected rows above which a gate's finding is an ERROR, else a WARN
    (`GTM_QUALITY_ERROR_RATE`)."""
    raw = (environ.get(ERROR_RATE_VARIABLE) or "").strip()
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


def callback_url(environ: Mapping[str, str]) -> str:
    """`SALESFORCE_CALLBACK_URL`: where Salesforce sends the user back after consent.

    It must match the connected app's callback URL exactly. https, or http on loopback only
    (Salesforce itself allows plain http for localhost callbacks and nothing else). A URL with
    user-info (`user@host`) is refused: browsers and parsers disagree on which host it names.
    """
    raw = (environ.get("SALESFORCE_CALLBACK_URL") or DEFAULT_CALLBACK_URL).strip()
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


def state_secret(environ: Mapping[str, str]) -> str:
    """`CLERK_SECRET_KEY`: the HMAC key that signs the OAuth state."""
    raw = (environ.get("CLERK_SECRET_KEY") or "").strip()
    if len(raw) < MIN_STATE_SECRET_LENGTH:
        raise ConfigError(
            f"CLERK_SECRET_KEY must be set to a random string of at least "
            f"{MIN_STATE_SECRET_LENGTH} characters"
        )
    return raw


DEFAULT_LIFETIME_SECONDS = 7200.0
LIFETIME_VARIABLE = "SALESFORCE_SESSION_LIFETIME_SECONDS"


def session_lifetime(environ: Mapping[str, str]) -> float:
    """`SALESFORCE_SESSION_LIFETIME_SECONDS`: the org's session timeout (default 2 hours)."""
    raw = (environ.get(LIFETIME_VARIABLE) or "").strip()
    if not raw:
        return DEFAULT_LIFETIME_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ConfigError(f"{LIFETIME_VARIABLE} must be a positive number of seconds")
    return value


DEFAULT_INTERVAL_SECONDS = 900
INTERVAL_VARIABLE = "GTM_SYNC_INTERVAL_SECONDS"
MIN_INTERVAL_SECONDS = 30


def sync_interval_seconds(environ: Mapping[str, str]) -> int:
    """`GTM_SYNC_INTERVAL_SECONDS`: how often the sync sensor looks for tenants (default 900)."""
    raw = (environ.get(INTERVAL_VARIABLE) or "").strip()
    if not raw:
        return DEFAULT_INTERVAL_SECONDS
    if not raw.isdigit() or int(raw) < MIN_INTERVAL_SECONDS:
        raise ConfigError(
            f"{INTERVAL_VARIABLE} must be a whole number of seconds, at least "
            f"{MIN_INTERVAL_SECONDS}"
        )
    return int(raw)


def cron_text(environ: Mapping[str, str], variable: str, default: str) -> str:
    """A cron expression variable's text (default when unset); Dagster, which runs the
    schedules, judges its syntax."""
    return (environ.get(variable) or "").strip() or default


class Settings:
    """Every setting of one program, from a snapshot of its environment taken where it starts.

    Ask for a setting and it is validated then (errors name the variable) and kept; secrets are
    given only to the code that asks for them by name (`secret`), and the repr shows no value.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ: Mapping[str, str] = MappingProxyType(dict(environ))

    @classmethod
    def from_process(cls) -> Settings:
        """The process environment's settings: called once where a program starts."""
        return cls(os.environ)

    def __repr__(self) -> str:
        return "Settings(<environment snapshot>)"

    def secret(self, variable: str) -> str | None:
        """The secret in `variable` (a key, a client secret), stripped; None when unset."""
        return (self._environ.get(variable) or "").strip() or None

    @cached_property
    def gtm_home(self) -> Path:
        return gtm_home(self._environ)

    @cached_property
    def dagster_home(self) -> Path | None:
        """`DAGSTER_HOME` when set (Dagster's own variable)."""
        raw = (self._environ.get("DAGSTER_HOME") or "").strip()
        return Path(raw) if raw else None

    @cached_property
    def database_url(self) -> str:
        return database_url(self._environ)

    @cached_property
    def salesforce(self) -> SalesforceSettings:
        return SalesforceSettings.from_env(self._environ)

    @cached_property
    def session_lifetime(self) -> float:
        return session_lifetime(self._environ)

    @cached_property
    def callback_url(self) -> str:
        return callback_url(self._environ)

    @cached_property
    def state_secret(self) -> str:
        return state_secret(self._environ)

    @cached_property
    def bulk_threshold(self) -> int:
        return bulk_threshold(self._environ)

    @cached_property
    def parallel_reads(self) -> int:
        return parallel_reads(self._environ)

    @cached_property
    def quality_error_rate(self) -> float:
        return quality_error_rate(self._environ)

    @cached_property
    def sync_interval_seconds(self) -> int:
        return sync_interval_seconds(self._environ)

    def cron(self, variable: str, default: str) -> str:
        return cron_text(self._environ, variable, default)
