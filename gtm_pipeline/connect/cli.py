"""`gtm-pipeline web`, `connect` and `operator`: the connect flow from a browser or a terminal.

`connect` runs the same OAuth web server flow as the web app's Connect button, listening for the
callback itself on the host, port and path of SALESFORCE_CALLBACK_URL. `operator create` prints a
new bearer token once; the store keeps only its hash.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import click
import requests
import sqlalchemy as sa

from gtm_pipeline import config
from gtm_pipeline.connect.flow import ConnectFlow, ConnectOutcome
from gtm_pipeline.salesforce.http import PinnedSession
from gtm_pipeline.store import make_engine, upgrade
from gtm_pipeline.store.connections import create_operator, list_operators, revoke_operator
from gtm_pipeline.web import identifiers
from gtm_pipeline.web.app import app_from_env
from gtm_pipeline.web.auth import hash_token, new_operator_token
from gtm_pipeline.web.listener import CallbackListener
from gtm_pipeline.web.serving import BackgroundServer, ServerStartError, serve_forever

log = logging.getLogger(__name__)

DEFAULT_WEB_PORT = 8765
MAX_LABEL_CHARS = 200
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


def _store() -> sa.Engine:
    engine = make_engine(config.database_url())
    upgrade(engine)
    return engine


def _checked_tenant(value: str, param: str = "--tenant") -> str:
    try:
        return identifiers.tenant_id(value)
    except identifiers.InvalidIdentifier as exc:
        raise click.BadParameter(str(exc), param_hint=param) from None


# -- web -------------------------------------------------------------------------------------


@click.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_WEB_PORT,
    show_default=True,
    help="Port; the default matches the default SALESFORCE_CALLBACK_URL.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Serve plain http on a non-loopback --host anyway (with a warning). Only behind a "
    "TLS-terminating proxy on a network you trust.",
)
def web(host: str, port: int, insecure: bool) -> None:
    """Serve the connectors web app (operator login, Connect Salesforce, Disconnect)."""
    _check_exposure(host, insecure)
    app = app_from_env()
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Connectors app on http://{shown}:{port}/connectors (Ctrl-C to stop)")
    try:
        serve_forever(app, host, port)
    except ServerStartError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it already handled; stopping is what was asked


def _check_exposure(host: str, insecure: bool) -> None:
    """Refuse to serve plain http beyond this machine unless told to, and then warn.

    The app itself speaks only plain http: on a non-loopback address, operator tokens, session
    cookies and OAuth codes would cross the network unencrypted.
    """
    if config.is_loopback_host(host):
        return
    if not insecure:
        raise click.ClickException(
            f"refusing to serve plain http on {host}, which other machines can reach: operator "
            "tokens, session cookies and OAuth codes would cross the network unencrypted. Listen "
            "on 127.0.0.1 behind a TLS-terminating proxy, or pass --insecure to serve anyway"
        )
    log.warning(
        "serving plain http on %s (--insecure): anyone on the network can read what passes; "
        "put a TLS-terminating proxy in front",
        host,
    )


# -- connect ---------------------------------------------------------------------------------


def _listen_address(callback_url: str) -> tuple[str, int, str]:
    """Host, port and path to listen on; only plain http can be served without a certificate."""
    parts = urlsplit(callback_url)
    if parts.scheme != "http" or not parts.hostname:
        raise click.ClickException(
            "connect listens for the callback itself over plain http, so SALESFORCE_CALLBACK_URL "
            "must be http://127.0.0.1:PORT/... or http://localhost:PORT/...; with an https "
            "callback, use the Connect button of `gtm-pipeline web` instead"
        )
    return parts.hostname, parts.port or 80, parts.path or "/"


def _approve(authorize_url: str, callback_url: str) -> None:
    """Follow the authorize URL as an auto-approving browser would, and deliver the redirect."""
    with PinnedSession(config.ca_bundle(), timeout=60) as https:
        try:
            answer = https.get(authorize_url, allow_redirects=False)
        except requests.RequestException as exc:
            raise click.ClickException(
                f"could not reach the authorization server: {type(exc).__name__}"
            ) from None
    location = answer.headers.get("location", "")
    if answer.status_code == 200:
        raise click.ClickException(
            "the authorization server showed a consent page; --auto-approve needs an emulator "
            "started with --auto-approve (or open the URL above in a browser instead)"
        )
    if answer.status_code not in REDIRECT_STATUSES or not location.startswith(callback_url):
        raise click.ClickException(
            f"the authorization server answered HTTP {answer.status_code}, not a redirect to "
            "SALESFORCE_CALLBACK_URL"
        )
    with requests.Session() as local:
        local.trust_env = False  # loopback: never through a proxy from the environment
        try:
            local.get(location, timeout=120)
        except requests.RequestException as exc:
            raise click.ClickException(
                f"could not deliver the callback to the listener: {type(exc).__name__}"
            ) from None


def _run_connect(
    flow: ConnectFlow, tenant: str, connector: str, auto_approve: bool, timeout: float
) -> ConnectOutcome | None:
    host, port, path = _listen_address(flow.callback_url)
    listener = CallbackListener(flow, path)
    try:
        server = BackgroundServer(listener.app, host=host, port=port).start()
    except ServerStartError as exc:
        raise click.ClickException(
            f"{exc}; is `gtm-pipeline web` running on that port? Use its Connect button, or stop it"
        ) from exc
    try:
        url = flow.start(tenant, connector, listener.binding)
        click.echo(f"To connect tenant {tenant}, open this URL in a browser and allow access:")
        click.echo(url)
        click.echo(f"Waiting up to {timeout:g} s for the callback on {server.base_url}{path} ...")
        if auto_approve:
            _approve(url, flow.callback_url)
        return listener.wait(timeout)
    finally:
        server.stop()


@click.command("connect")
@click.option("--tenant", required=True, help="Tenant id to connect.")
@click.option("--connector", default=identifiers.DEFAULT_CONNECTOR_ID, show_default=True)
@click.option(
    "--auto-approve",
    is_flag=True,
    help="Follow the authorize URL without a browser (the emulator in auto-approve mode).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1.0),
    default=300.0,
    show_default=True,
    help="Seconds to wait for the callback.",
)
@click.pass_context
def connect(
    ctx: click.Context, tenant: str, connector: str, auto_approve: bool, timeout: float
) -> None:
    """Connect a tenant's Salesforce org from a terminal; exit 0 only once it is connected."""
    tenant = _checked_tenant(tenant)
    try:
        connector = identifiers.connector_id(connector)
    except identifiers.InvalidIdentifier as exc:
        raise click.BadParameter(str(exc), param_hint="--connector") from None
    flow = ConnectFlow.from_env(_store())
    outcome = _run_connect(flow, tenant, connector, auto_approve, timeout)
    if outcome is None:
        raise click.ClickException(
            f"no callback arrived within {timeout:g} seconds; run the command again"
        )
    click.echo(outcome.message)
    if not (outcome.ok and outcome.status == "connected"):
        ctx.exit(1)


# -- operator --------------------------------------------------------------------------------


@click.group("operator")
def operator() -> None:
    """Manage the operator credentials that log in to the connectors web app."""


@operator.command("create")
@click.option("--tenant", default=None, help="Scope the credential to this tenant.")
@click.option("--admin", is_flag=True, help="An admin credential: sees every tenant.")
@click.option("--label", required=True, help="Who or what holds it, e.g. an email address.")
def create(tenant: str | None, admin: bool, label: str) -> None:
    """Create a credential and print its bearer token (shown once)."""
    if admin == (tenant is not None):
        raise click.UsageError("give exactly one of --tenant TENANT or --admin")
    if tenant is not None:
        tenant = _checked_tenant(tenant)
    label = label.strip()
    if not label or len(label) > MAX_LABEL_CHARS or not label.isprintable():
        raise click.BadParameter(
            f"the label must be 1 to {MAX_LABEL_CHARS} printable characters", param_hint="--label"
        )
    token = new_operator_token()
    with _store().begin() as conn:
        row = create_operator(conn, token_hash=hash_token(token), tenant_id=tenant, label=label)
    scope = "admin, every tenant" if tenant is None else f"tenant {tenant}"
    click.echo(f"Created operator credential {row.credential_id} ({scope}) labelled {label!r}.")
    click.echo("Its token follows. It is shown only now: the store keeps only its hash.")
    click.echo(token)


@operator.command("list")
def list_credentials() -> None:
    """List credentials (never their tokens): id, scope, label, created, revoked."""
    with _store().connect() as conn:
        rows = list_operators(conn)
    if not rows:
        click.echo("No operator credentials yet; create one with `operator create`.")
        return
    for row in rows:
        scope = "admin" if row.tenant_id is None else f"tenant {row.tenant_id}"
        revoked = f"revoked {row.revoked_at:%Y-%m-%d %H:%M} UTC" if row.revoked_at else "active"
        created = f"{row.created_at:%Y-%m-%d %H:%M} UTC"
        click.echo(f"{row.credential_id}  {scope}  {row.label!r}  created {created}  {revoked}")


@operator.command("revoke")
@click.argument("credential_id")
def revoke(credential_id: str) -> None:
    """Revoke a credential: its token and every browser session made with it stop working."""
    with _store().begin() as conn:
        revoked = revoke_operator(conn, credential_id)
    if not revoked:
        raise click.ClickException(f"no active operator credential {credential_id!r}")
    click.echo(f"Revoked operator credential {credential_id}.")
