"""OAuth endpoints over HTTP: authorize (consent page or auto-approve), token, revoke.

Rules live in `oauth_server.OAuthAuthority`; this module only reads forms, renders the two small
pages and builds redirects. Token endpoint answers carry `Cache-Control: no-store` as OAuth
requires.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from gtm_pipeline.emulator.oauth_server import (
    AuthorizationRequest,
    AuthorizePageError,
    OAuthError,
)
from gtm_pipeline.emulator.state import EmulatorState
from gtm_pipeline.emulator.wire import json_response

SCOPE_LABELS = {
    "api": "Access and manage your data (api)",
    "refresh_token": "Perform requests on your behalf at any time (refresh_token)",
    "offline_access": "Perform requests on your behalf at any time (offline_access)",
    "full": "Full access (full)",
    "id": "Access your basic information (id)",
}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
PAGE_HEADERS = {**NO_STORE, "X-Frame-Options": "DENY"}

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
)


def redirect_to(redirect_uri: str, params: dict[str, str | None]) -> RedirectResponse:
    """302 to the client's callback with parameters added to any it already has."""
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    target = urlunsplit(parts._replace(query=urlencode(query)))
    return RedirectResponse(target, status_code=302, headers=NO_STORE)


def _error_page(error: str, description: str) -> HTMLResponse:
    html = _templates.get_template("oauth_error.html").render(error=error, description=description)
    return HTMLResponse(html, status_code=400, headers=PAGE_HEADERS)


def _approved(state: EmulatorState, request: AuthorizationRequest) -> RedirectResponse:
    code = state.oauth.approve(request)
    return redirect_to(request.redirect_uri, {"code": code, "state": request.state})


def _consent_page(state: EmulatorState, request: AuthorizationRequest) -> HTMLResponse:
    html = _templates.get_template("authorize.html").render(
        client_id_short=request.client_id[:12] + "…",
        scopes=[SCOPE_LABELS.get(s, s) for s in request.scope.split()],
        org_id=state.org.org_id,
        handle=state.oauth.park(request),
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)


async def authorize(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    params = dict(request.query_params)
    try:
        auth_request = state.oauth.validate_authorize(params)
    except AuthorizePageError as exc:
        return _error_page(exc.error, exc.description)
    except OAuthError as exc:
        return redirect_to(
            params["redirect_uri"],
            {
                "error": exc.error,
                "error_description": exc.description,
                "state": params.get("state"),
            },
        )
    if state.auto_approve:
        return _approved(state, auth_request)
    return _consent_page(state, auth_request)


async def decide(request: Request) -> Response:
    """The consent form's POST: Allow issues a code, Deny reports access_denied."""
    state: EmulatorState = request.app.state.emulator
    form = await request.form()
    auth_request = state.oauth.claim(str(form.get("request_handle", "")))
    if auth_request is None:
        return _error_page("invalid_request", "this authorization request expired or was used")
    decision = form.get("decision")
    if decision == "allow":
        return _approved(state, auth_request)
    if decision == "deny":
        return redirect_to(
            auth_request.redirect_uri,
            {
                "error": "access_denied",
                "error_description": "end-user denied authorization",
                "state": auth_request.state,
            },
        )
    return _error_page("invalid_request", "decision must be allow or deny")


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        raise OAuthError("invalid_request", "body must be application/x-www-form-urlencoded")
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def token(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    try:
        body = state.oauth.token(await _form(request))
    except OAuthError as exc:
        return json_response(exc.body(), status=exc.status, headers=NO_STORE)
    return json_response(body, headers=NO_STORE)


async def revoke(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    try:
        form = await _form(request)
        presented = form.get("token", "")
        if not presented:
            raise OAuthError("invalid_request", "missing required token parameter")
        state.oauth.revoke(presented)
    except OAuthError as exc:
        return json_response(exc.body(), status=exc.status, headers=NO_STORE)
    return Response(status_code=200, headers=NO_STORE)


def routes() -> list[Route]:
    return [
        Route("/services/oauth2/authorize", authorize, methods=["GET"]),
        Route("/services/oauth2/authorize", decide, methods=["POST"]),
        Route("/services/oauth2/token", token, methods=["POST"]),
        Route("/services/oauth2/revoke", revoke, methods=["POST"]),
    ]
