"""Build the connectors web app: from explicit parts (tests) or from a program's settings (`web`).

Every request passes the guards of `guards.py` first (security headers, trusted Host, no slash
redirects, a bounded body). The app answers Host headers naming the callback URL's host or a
loopback host (`trusted_hosts`); `create_app` alone answers loopback only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Collection

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gtm_pipeline.config import Settings
from gtm_pipeline.connect.flow import ConnectFlow
from gtm_pipeline.store import open_store
from gtm_pipeline.web.guards import LOOPBACK_HOSTS, guarded_app, trusted_hosts
from gtm_pipeline.web.headers import apply_security_headers
from gtm_pipeline.web.mapping_routes import (
    TenantClientFactory,
    mapping_routes,
    tenant_clients,
)
from gtm_pipeline.web.pages import message_page
from gtm_pipeline.web.routes import WebContext, routes, wants_html
from gtm_pipeline.web.session import DEFAULT_MAX_AGE_SECONDS, SessionCodec

log = logging.getLogger(__name__)

_SESSION_KEY_LABEL = b"gtm-pipeline web session secret v1"


def session_secret_from(state_secret: str) -> str:
    """The cookie-signing secret, derived from CLERK_SECRET_KEY with its own label.

    One secret to configure instead of two; the label keeps a session signature from ever
    doubling as an OAuth state signature. Changing CLERK_SECRET_KEY logs every browser out.
    """
    return hmac.new(state_secret.encode("utf-8"), _SESSION_KEY_LABEL, hashlib.sha256).hexdigest()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {
        404: "There is no page here.",
        405: "This address does not take that method.",
        413: "The request is too large.",
    }
    message = messages.get(exc.status_code, "The request could not be handled.")
    if wants_html(request):
        return message_page("Not available", message, exc.status_code)
    return JSONResponse({"error": "http_error", "message": message}, status_code=exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    # This handler runs outside the middleware stack, so it adds the headers itself.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    response = message_page(
        "Something went wrong", "The server hit an unexpected error; see its log.", 500
    )
    apply_security_headers(response.headers)
    return response


def create_app(
    engine: sa.Engine,
    flow: ConnectFlow,
    *,
    secure_cookies: bool = True,
    session_secret: str,
    session_max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
    tenant_client: TenantClientFactory,
    allowed_hosts: Collection[str] = LOOPBACK_HOSTS,
) -> Starlette:
    """The app over an already migrated store. `secure_cookies=False` only for http on loopback.

    `tenant_client` builds the Salesforce client the mapping page reads fields with (see
    `mapping_routes.tenant_clients`). `allowed_hosts` are the
    Host header values answered (others get 400).
    """
    app = guarded_app(
        routes() + mapping_routes(),
        allowed_hosts=allowed_hosts,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.web = WebContext(
        engine=engine,
        flow=flow,
        codec=SessionCodec(session_secret, max_age_seconds=session_max_age_seconds),
        secure_cookies=secure_cookies,
    )
    app.state.tenant_client = tenant_client
    return app


def app_from_settings(settings: Settings, *, secure_cookies: bool | None = None) -> Starlette:
    """The app as `gtm-pipeline web` serves it: the store, SALESFORCE_* and keys of `settings`.

    Cookies are Secure unless the callback URL is plain http (allowed on loopback only), which is
    the one case where the browser reaches the app without TLS.
    """
    engine = open_store(settings.database_url, home=settings.gtm_home)
    flow = ConnectFlow.from_settings(engine, settings)
    if secure_cookies is None:
        secure_cookies = flow.callback_url.startswith("https://")
    return create_app(
        engine,
        flow,
        secure_cookies=secure_cookies,
        session_secret=session_secret_from(settings.state_secret),
        tenant_client=tenant_clients(engine, settings),
        allowed_hosts=trusted_hosts(flow.callback_url),
    )
