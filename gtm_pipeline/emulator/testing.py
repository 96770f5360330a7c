"""Helpers for tests, benchmarks and the demo: run an emulator, drive its control API, get tokens.

Everything here talks HTTPS with the emulator's own CA. `REQUESTS_CA_BUNDLE` (set on many
machines) overrides `Session.verify` in requests, so `CAPinnedSession` makes its CA win for
every call that does not pass `verify=` itself, which is how simple-salesforce calls.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from gtm_pipeline.emulator.latency import profile_named
from gtm_pipeline.emulator.oauth_server import pkce_challenge
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.emulator.paging import PageSizePolicy
from gtm_pipeline.emulator.server import EmulatorServer
from gtm_pipeline.emulator.state import EmulatorOptions

if TYPE_CHECKING:
    import sqlalchemy as sa

    from gtm_pipeline.salesforce.client import RefreshHook, SalesforceClient

DEFAULT_REDIRECT_URI = "https://127.0.0.1:8443/oauth/callback"


class CAPinnedSession(requests.Session):
    """A requests session that verifies TLS against one CA file, whatever the environment says."""

    def __init__(self, ca_bundle: str) -> None:
        super().__init__()
        self.ca_bundle = ca_bundle
        self.verify = ca_bundle

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def]
        if verify is None or verify is True:
            verify = self.ca_bundle
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


class ManualClock:
    """A clock that only moves when told to: lets tests expire codes, sessions and cursors."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class EmulatorControlError(RuntimeError):
    """The control API refused a call; `status` is the HTTP status, the message its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"emulator control API answered {status}: {message}")
        self.status = status


class EmulatorControl:
    """A client for /__emulator/ (mutations, faults, config, stats, ground truth)."""

    def __init__(
        self,
        info: Mapping[str, Any],
        session: requests.Session | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._base = f"{info['instance_url']}/__emulator"
        self._token = str(info["control_token"])
        self._session = session or CAPinnedSession(str(info["ca_bundle"]))
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"EmulatorControl({self._base!r})"

    def _call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        response = self._session.request(
            method,
            f"{self._base}{path}",
            headers={"X-Emulator-Token": self._token},
            json=body,
            timeout=self._timeout,
            **kwargs,
        )
        if response.status_code >= 400:
            try:
                message = str(response.json().get("error", response.text))
            except ValueError:
                message = response.text[:200]
            raise EmulatorControlError(response.status_code, message)
        return response

    def mutate(self, ops: Mapping[str, Any] | list[Mapping[str, Any]]) -> list[dict]:
        """Apply one op or several, in order, through `Org.mutate`; returns each op's result."""
        return self._call("POST", "/mutations", ops).json()["results"]

    def add_fault(self, rule: Mapping[str, Any] | None = None, **fields: Any) -> dict:
        """Add one fault rule, given as a dict or as keywords (`kind="status", times=2`)."""
        return self.add_faults([{**(rule or {}), **fields}])[0]

    def add_faults(self, rules: list[Mapping[str, Any]]) -> list[dict]:
        return self._call("POST", "/faults", list(rules)).json()["added"]

    def faults(self) -> list[dict]:
        return self._call("GET", "/faults").json()["rules"]

    def clear_faults(self) -> int:
        return self._call("DELETE", "/faults").json()["cleared"]

    def set_latency(self, profile: str | None = None, **numbers: float) -> dict:
        """Set the latency profile: a preset by name, chosen numbers (`call_ms=20`, ...) or both
        (the preset with those numbers changed); returns the profile now in force."""
        body = {**({"profile": profile} if profile is not None else {}), **numbers}
        return self._call("POST", "/latency", body).json()["latency"]

    def latency(self) -> dict:
        return self._call("GET", "/latency").json()["latency"]

    def clear_latency(self) -> dict:
        """Back to the `none` profile: no delay."""
        return self._call("DELETE", "/latency").json()["latency"]

    def configure(self, **settings: Any) -> dict:
        """Change settings (page_size, daily_api_limit, session_lifetime, reset_usage, ...)."""
        return self._call("POST", "/config", settings).json()

    def config(self) -> dict:
        return self._call("GET", "/config").json()

    def stats(self) -> dict:
        return self._call("GET", "/stats").json()

    def reset_stats(self) -> dict:
        return self._call("POST", "/stats/reset").json()

    def update_counts(self, sobject: str) -> dict[str, int]:
        """Per record Id, how many sObject Collections updates changed it (control ops excluded)."""
        return self._call("GET", f"/updates/{sobject}").json()["counts"]

    def truth(self, sobject: str) -> Iterator[dict]:
        """Ground truth for one object (deleted rows included), streamed line by line."""
        with self._call("GET", f"/truth/{sobject}", stream=True) as response:
            for line in response.iter_lines():
                if line:
                    yield json.loads(line)


class _FormReader(HTMLParser):
    """Reads the consent page's form: its action and the hidden fields to send back."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = values.get("action")
        if tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.fields[str(values["name"])] = values.get("value") or ""


def answer_consent(
    session: requests.Session, response: requests.Response, decision: str = "allow"
) -> requests.Response:
    """Click Allow (or Deny) on a consent page, as a user would; returns the redirect."""
    reader = _FormReader()
    reader.feed(response.text)
    if reader.action is None:
        raise RuntimeError("the authorize page has no consent form")
    return session.post(
        urljoin(response.url, reader.action),
        data={**reader.fields, "decision": decision},
        allow_redirects=False,
        timeout=30,
    )


def salesforce_environment(info: Mapping[str, Any]) -> dict[str, str]:
    """The SALESFORCE_* settings that point a program at the emulator `info` describes (its
    emulator.json): connected app, login URL, CA and API version. Its instance URL is
    https://127.0.0.1:PORT, not a Salesforce domain, hence SALESFORCE_ALLOW_ANY_INSTANCE."""
    return {
        "SALESFORCE_CLIENT_ID": info["client_id"],
        "SALESFORCE_CLIENT_SECRET": info["client_secret"],
        "SALESFORCE_LOGIN_URL": info["login_url"],
        "SALESFORCE_CA_BUNDLE": info["ca_bundle"],
        "SALESFORCE_API_VERSION": info["api_version"],
        "SALESFORCE_ALLOW_ANY_INSTANCE": "1",
    }


def new_pkce_pair() -> tuple[str, str]:
    """A fresh PKCE (verifier, S256 challenge)."""
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(48)).rstrip(b"=").decode()
    return verifier, pkce_challenge(verifier)


def obtain_tokens(
    info: Mapping[str, Any],
    *,
    redirect_uri: str = DEFAULT_REDIRECT_URI,
    scope: str = "api refresh_token",
    use_pkce: bool = True,
    session: requests.Session | None = None,
) -> dict[str, str]:
    """Run authorize (auto-approved, or Allow clicked) and the code exchange; return the tokens."""
    http = session or CAPinnedSession(str(info["ca_bundle"]))
    state = secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": info["client_id"],
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
    }
    verifier = None
    if use_pkce:
        verifier, challenge = new_pkce_pair()
        params.update(code_challenge=challenge, code_challenge_method="S256")
    response = http.get(
        f"{info['login_url']}/services/oauth2/authorize",
        params=params,
        allow_redirects=False,
        timeout=30,
    )
    if response.status_code == 200:
        response = answer_consent(http, response)
    if response.status_code != 302:
        raise RuntimeError(f"authorize answered {response.status_code}, not a redirect")
    returned = parse_qs(urlsplit(response.headers["location"]).query)
    if returned.get("state") != [state] or "code" not in returned:
        raise RuntimeError(f"authorize did not return a code: {returned.get('error')}")
    form = {
        "grant_type": "authorization_code",
        "code": returned["code"][0],
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
        "redirect_uri": redirect_uri,
    }
    if verifier is not None:
        form["code_verifier"] = verifier
    token_response = http.post(f"{info['login_url']}/services/oauth2/token", data=form, timeout=30)
    if token_response.status_code != 200:
        raise RuntimeError(f"token exchange failed: {token_response.json().get('error')}")
    return token_response.json()


def emulator_client(
    info: Mapping[str, Any],
    access_token: str | None = None,
    *,
    refresh: RefreshHook | None = None,
    sleep: Callable[[float], None] | None = None,
    **config: Any,
) -> SalesforceClient:
    """A `SalesforceClient` on the emulator of `info` (its CA, its API version, `config`
    overrides), with `access_token` or one obtained through the OAuth flow, and the client's
    own `refresh` hook and `sleep`."""
    from gtm_pipeline.salesforce.client import ClientConfig, Credentials, SalesforceClient

    if access_token is None:
        tokens = obtain_tokens(info)
        credentials = Credentials(tokens["instance_url"], tokens["access_token"])
    else:
        credentials = Credentials(str(info["instance_url"]), access_token)
    return SalesforceClient(
        credentials,
        config=ClientConfig(ca_bundle=info["ca_bundle"], api_version=info["api_version"], **config),
        refresh=refresh,
        sleep=sleep,
        org_id=info.get("org_id"),
    )


class TokenRefresher:
    """A refresh hook for SalesforceClient running the real refresh_token grant; counts its calls.

    For tests that exercise the client without the store-backed TokenProvider.
    """

    def __init__(self, info: Mapping[str, Any], refresh_token: str) -> None:
        self.info = info
        self.refresh_token = refresh_token
        self.calls = 0
        self._http = CAPinnedSession(str(info["ca_bundle"]))

    def __repr__(self) -> str:
        return f"TokenRefresher({self.info['login_url']!r}, calls={self.calls})"

    def __call__(self, refused: Any) -> Any:
        from gtm_pipeline.salesforce.client import Credentials

        self.calls += 1
        response = self._http.post(
            f"{self.info['login_url']}/services/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": self.refresh_token,
                "client_id": self.info["client_id"],
                "client_secret": self.info["client_secret"],
            },
            timeout=30,
        )
        response.raise_for_status()
        body = response.json()
        return Credentials(body["instance_url"], body["access_token"])


@dataclass
class EmulatorHandle:
    """A running emulator: connection facts, the org it serves, and its control client."""

    info: dict[str, Any]
    org: Org
    control: EmulatorControl
    server: EmulatorServer

    def __repr__(self) -> str:
        return f"EmulatorHandle({self.info['instance_url']})"

    def session(self) -> CAPinnedSession:
        """A requests session that trusts this emulator's CA."""
        return CAPinnedSession(str(self.info["ca_bundle"]))


def _options(overrides: dict[str, Any]) -> EmulatorOptions:
    page_size = overrides.pop("page_size", None)
    if not isinstance(page_size, PageSizePolicy):
        page_size = PageSizePolicy.from_json(page_size)
    overrides.setdefault("auto_approve", True)
    if isinstance(overrides.get("latency_profile"), str):
        overrides["latency_profile"] = profile_named(overrides["latency_profile"])
    return EmulatorOptions(page_size=page_size, **overrides)


@contextmanager
def running_emulator(
    state_dir: str | Path,
    *,
    org: Org | None = None,
    seed: int = 42,
    counts: Mapping[str, int] | None = None,
    dirty_ratio: float = 0.05,
    port: int = 0,
    clock: Callable[[], float] = time.time,
    **options: Any,
) -> Iterator[EmulatorHandle]:
    """Serve `org` (or a freshly generated one) over HTTPS until the block ends.

    `options` are EmulatorOptions fields; `auto_approve` defaults to True here, `page_size`
    may be given as an int or the control API's JSON form and `latency_profile` by name.
    """
    if org is None:
        org = Org.generate(seed=seed, counts=counts, dirty_ratio=dirty_ratio)
    server = EmulatorServer(org, state_dir, port=port, options=_options(dict(options)), clock=clock)
    with server:
        info = server.info
        yield EmulatorHandle(info=info, org=org, control=EmulatorControl(info), server=server)


def store_connected_tenant(
    engine: sa.Engine, info: Mapping[str, Any], encryption_key: str, tenant_id: str
) -> None:
    """`tenant_id` connected to the emulator of `info` as the OAuth flow leaves a tenant: tokens
    from the emulator's own flow, encrypted with `encryption_key` in the store, the connector
    `connected` (connector id `sf-<tenant>`)."""
    from gtm_pipeline.connect.vault import StoredTokens, TokenVault
    from gtm_pipeline.salesforce.crypto import TokenCipher
    from gtm_pipeline.store.connections import upsert_connector

    tokens = obtain_tokens(info)
    issued = datetime.fromtimestamp(int(tokens["issued_at"]) / 1000, tz=UTC)
    connector_id = f"sf-{tenant_id}"
    with engine.begin() as conn:
        upsert_connector(
            conn,
            tenant_id=tenant_id,
            connector_id=connector_id,
            instance_url=tokens["instance_url"],
            org_id=info.get("org_id"),
            status="connected",
        )
        TokenVault(TokenCipher(encryption_key)).save(
            conn,
            StoredTokens(
                tenant_id=tenant_id,
                connector_id=connector_id,
                instance_url=tokens["instance_url"],
                access_token=tokens["access_token"],
                refresh_token=tokens["refresh_token"],
                issued_at=issued,
            ),
        )
