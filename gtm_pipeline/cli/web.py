"""`gtm-pipeline web`: serve the connectors web app (operator login, Connect, Disconnect)."""

from __future__ import annotations

import logging

import click

from gtm_pipeline import config
from gtm_pipeline.cli.common import program_settings

log = logging.getLogger(__name__)

DEFAULT_WEB_PORT = 8765


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
    from gtm_pipeline.web.app import app_from_settings
    from gtm_pipeline.web.serving import ServerStartError, serve_forever

    _check_exposure(host, insecure)
    app = app_from_settings(program_settings())
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
