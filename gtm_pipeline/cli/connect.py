"""`gtm-pipeline connect`: the connect flow from a terminal.

It runs the same OAuth web server flow as the web app's Connect button, listening for the
callback itself on the host, port and path of SALESFORCE_CALLBACK_URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from gtm_pipeline.cli.common import checked_tenant, open_store, program_settings
from gtm_pipeline.web import identifiers

if TYPE_CHECKING:
    from gtm_pipeline.connect.flow import ConnectFlow, ConnectOutcome

REDIRECT_STATUSES = (301, 302, 303, 307, 308)


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
    import requests

    from gtm_pipeline.salesforce.http import PinnedSession

    with PinnedSession(program_settings().salesforce.ca_bundle, timeout=60) as https:
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
    from gtm_pipeline.web.listener import CallbackListener
    from gtm_pipeline.web.serving import BackgroundServer, ServerStartError

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
    tenant = checked_tenant(tenant)
    try:
        connector = identifiers.connector_id(connector)
    except identifiers.InvalidIdentifier as exc:
        raise click.BadParameter(str(exc), param_hint="--connector") from None
    from gtm_pipeline.connect.flow import ConnectFlow

    flow = ConnectFlow.from_settings(open_store(), program_settings())
    outcome = _run_connect(flow, tenant, connector, auto_approve, timeout)
    if outcome is None:
        raise click.ClickException(
            f"no callback arrived within {timeout:g} seconds; run the command again"
        )
    click.echo(outcome.message)
    if not (outcome.ok and outcome.status == "connected"):
        ctx.exit(1)
