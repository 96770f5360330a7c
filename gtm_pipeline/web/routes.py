"""The app's routes: login, the connectors page and API, and the Salesforce connect flow.

Every route except the OAuth callback, the login form and the stylesheet needs an operator
credential; the callback needs instead the browser and operator that started the flow (see
`gtm_pipeline.connect.flow.FlowBinding`). Tenants outside a credential's scope answer 404 exactly
like tenants that do not exist, so a scoped operator cannot even learn which other tenants there
are. Blocking work (store, Salesforce) runs in the thread pool so one slow token exchange does not
stall the app.

Cookies are SameSite=Lax, not Strict: Salesforce sends the browser back to the callback with a
cross-site redirect, on which browsers withhold Strict cookies, and the callback needs both the
session and the binding cookie. Lax still withholds them from cross-site POSTs, and every
state-changing route is a POST that also checks the session's CSRF token.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gtm_pipeline.connect.flow import ConnectFlow, FlowBinding
from gtm_pipeline.web import identifiers
from gtm_pipeline.web.auth import (
    AuthFailure,
    Operator,
    active_operator,
    authenticate,
    end_browser_sessions,
    hash_token,
    plausible_token,
    read_session,
    session_operator,
)
from gtm_pipeline.web.callback import finish_callback
from gtm_pipeline.web.csrf import CSRF_FIELD, csrf_matches
from gtm_pipeline.web.guards import read_form
from gtm_pipeline.web.overview import TenantOverview, list_overviews, tenant_overview
from gtm_pipeline.web.pages import STATIC_DIR, message_page, outcome_page, render
from gtm_pipeline.web.session import CookiePolicy, SessionCodec, SessionData

log = logging.getLogger(__name__)

AUTHORIZE_PATH = "/api/connectors/salesforce/authorize"
CALLBACK_PATH = "/api/connectors/salesforce/callback"
MAX_FORM_FIELDS = 8
NOT_FOUND_MESSAGE = "There is no tenant with that id, or your credential may not see it."
FORBIDDEN_FORM_MESSAGE = (
    "This form expired or did not come from this site. Reload the page and try again."
)
STYLESHEET_CACHE = "public, max-age=3600"


@dataclass(frozen=True)
class WebContext:
    """What every route needs, kept on `app.state.web`.

    `secure_cookies` asks for Secure cookies even over plain http; an https callback URL gets
    them (and the `__Host-` names) whatever it says.
    """

    engine: sa.Engine
    flow: ConnectFlow
    codec: SessionCodec
    secure_cookies: bool

    @functools.cached_property
    def cookies(self) -> CookiePolicy:
        return CookiePolicy.for_callback(self.flow.callback_url, secure=self.secure_cookies)

    def _set(self, response: Response, name: str, value: str, max_age: float) -> None:
        response.set_cookie(
            name,
            value,
            max_age=int(max_age),
            path="/",
            secure=self.cookies.secure,
            httponly=True,
            samesite="lax",
        )

    def _clear(self, response: Response, name: str) -> None:
        response.delete_cookie(
            name, path="/", secure=self.cookies.secure, httponly=True, samesite="lax"
        )

    def set_session(self, response: Response, session: SessionData) -> None:
        self._set(
            response,
            self.cookies.session_name,
            self.codec.dumps(session),
            self.codec.max_age_seconds,
        )

    def clear_session(self, response: Response) -> None:
        self._clear(response, self.cookies.session_name)

    def set_binding(self, response: Response, binding: FlowBinding, max_age: float) -> None:
        """Hand the starting browser the nonce its callback must bring back."""
        if not binding.nonce:
            raise ValueError("only a binding made with FlowBinding.new can start a flow")
        self._set(response, self.cookies.binding_name, binding.nonce, max_age)

    def clear_binding(self, response: Response) -> None:
        self._clear(response, self.cookies.binding_name)

    def session(self, request: Request) -> SessionData | None:
        return read_session(request, self.codec, self.cookies.session_name)

    def who(self, request: Request) -> Operator | AuthFailure:
        """The operator behind the request (blocking: reads the store)."""
        return authenticate(request, self.engine, self.codec, self.cookies.session_name)


def _ctx(request: Request) -> WebContext:
    return request.app.state.web


def wants_html(request: Request) -> bool:
    """Browsers navigating ask for HTML; API clients get JSON errors instead of pages."""
    return "text/html" in request.headers.get("accept", "")


def _refusal(
    request: Request, status_code: int, heading: str, message: str, operator: Any = None
) -> Response:
    if wants_html(request):
        return message_page(heading, message, status_code, operator)
    code = {400: "bad_request", 403: "forbidden", 404: "not_found"}.get(status_code, "error")
    return JSONResponse({"error": code, "message": message}, status_code=status_code)


def not_found(request: Request, operator: Any = None) -> Response:
    return _refusal(request, 404, "Not found", NOT_FOUND_MESSAGE, operator)


def _unauthenticated(request: Request, failure: AuthFailure) -> Response:
    """401 for API clients and bad bearer tokens; browsers without a session go to the login."""
    bearer_sent = "authorization" in request.headers
    if wants_html(request) and not bearer_sent:
        response: Response = RedirectResponse("/login", status_code=303)
        if failure is AuthFailure.REFUSED:
            _ctx(request).clear_session(response)
        return response
    if failure is AuthFailure.REFUSED:
        message = "The operator credential is not valid or was revoked."
        challenge = 'Bearer error="invalid_token"'
    else:
        message = "An operator credential is required: send Authorization: Bearer <token>."
        challenge = "Bearer"
    return JSONResponse(
        {"error": "unauthorized", "message": message},
        status_code=401,
        headers={"WWW-Authenticate": challenge},
    )


OperatorHandler = Callable[[Request, Operator], Awaitable[Response]]


def operator_required(handler: OperatorHandler) -> Callable[[Request], Awaitable[Response]]:
    """Run `handler` only for a valid, unrevoked operator credential."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        ctx = _ctx(request)
        result = await run_in_threadpool(ctx.who, request)
        if isinstance(result, AuthFailure):
            log.info("refused %s %s: credential %s", request.method, request.url.path, result.value)
            return _unauthenticated(request, result)
        return await handler(request, result)

    return endpoint


async def _form(request: Request) -> FormData:
    return await read_form(request, max_fields=MAX_FORM_FIELDS)


def _form_is_ours(operator: Operator, form: FormData) -> bool:
    """Cookie sessions must echo their CSRF token; bearer calls carry no ambient credential."""
    if operator.session is None:
        return True
    return csrf_matches(operator.session.csrf, form.get(CSRF_FIELD))


def _tenant_in_scope(value: object, operator: Operator) -> str | None:
    """The tenant id if it is well formed and the operator may act on it, else None (404)."""
    try:
        tenant = identifiers.tenant_id(value)
    except identifiers.InvalidIdentifier:
        return None
    return tenant if operator.may_access(tenant) else None


# -- login ---------------------------------------------------------------------------------


async def home(request: Request) -> Response:
    return RedirectResponse("/connectors", status_code=303)


async def login_page(request: Request) -> Response:
    ctx = _ctx(request)
    session = ctx.session(request)
    if session is not None and session.operator_hash is not None:
        if await run_in_threadpool(session_operator, ctx.engine, session):
            return RedirectResponse("/connectors", status_code=303)
        session = None
    session = session or SessionData.anonymous(ctx.codec.now())
    response = render("login.html", csrf_token=session.csrf, error=None)
    ctx.set_session(response, session)
    return response


async def login(request: Request) -> Response:
    ctx = _ctx(request)
    session = ctx.session(request)
    form = await _form(request)
    if session is None or not csrf_matches(session.csrf, form.get(CSRF_FIELD)):
        return message_page("Form expired", FORBIDDEN_FORM_MESSAGE, 403)
    token = form.get("token")
    token_hash = hash_token(token) if plausible_token(token) else None
    row = await run_in_threadpool(active_operator, ctx.engine, token_hash) if token_hash else None
    if row is None or token_hash is None:
        log.info("login refused: unknown or revoked operator token")
        return render(
            "login.html",
            401,
            csrf_token=session.csrf,
            error="That token is not valid, or it was revoked.",
        )
    log.info("operator credential %s logged in", row.credential_id)
    response = RedirectResponse("/connectors", status_code=303)
    ctx.set_session(response, session.logged_in(token_hash, ctx.codec.now()))
    return response


async def logout(request: Request) -> Response:
    """End the session on the server (every browser of this credential), then in the browser."""
    ctx = _ctx(request)
    session = ctx.session(request)
    form = await _form(request)
    if session is None or not csrf_matches(session.csrf, form.get(CSRF_FIELD)):
        return message_page("Form expired", FORBIDDEN_FORM_MESSAGE, 403)
    await run_in_threadpool(end_browser_sessions, ctx.engine, session, ctx.codec.now())
    response = RedirectResponse("/login", status_code=303)
    ctx.clear_session(response)
    return response


# -- connectors ----------------------------------------------------------------------------


def _overviews(engine: sa.Engine, tenant_ids: list[str] | None) -> list[TenantOverview]:
    with engine.connect() as conn:
        return list_overviews(conn, tenant_ids)


def _one_overview(engine: sa.Engine, tenant_id: str) -> TenantOverview | None:
    with engine.connect() as conn:
        return tenant_overview(conn, tenant_id)


@operator_required
async def connectors_page(request: Request, operator: Operator) -> Response:
    ctx = _ctx(request)
    tenants = await run_in_threadpool(_overviews, ctx.engine, operator.visible_tenant_ids())
    return render(
        "connectors.html",
        operator=operator,
        tenants=tenants,
        csrf_token=operator.session.csrf if operator.session else "",
        default_connector=identifiers.DEFAULT_CONNECTOR_ID,
    )


@operator_required
async def add_tenant(request: Request, operator: Operator) -> Response:
    """Start connecting a tenant that has no connector yet (the tenant exists from then on)."""
    return await _start_from_form(request, operator)


@operator_required
async def disconnect(request: Request, operator: Operator) -> Response:
    ctx = _ctx(request)
    tenant = _tenant_in_scope(request.path_params["tenant"], operator)
    if tenant is None:
        return not_found(request, operator)
    form = await _form(request)
    if not _form_is_ours(operator, form):
        return message_page("Form expired", FORBIDDEN_FORM_MESSAGE, 403, operator)
    outcome = await run_in_threadpool(ctx.flow.disconnect, tenant)
    if outcome.http_status == 404:
        return not_found(request, operator)
    if outcome.ok:
        heading = "Disconnected"
    elif outcome.status == "disconnected":
        heading = "Disconnected, but Salesforce did not confirm"
    else:
        heading = "Not disconnected"
    return outcome_page(
        heading=heading,
        ok=outcome.ok,
        http_status=outcome.http_status,
        message=outcome.message,
        tenant_id=outcome.tenant_id,
        status=outcome.status,
        operator=operator,
    )


@operator_required
async def api_connectors(request: Request, operator: Operator) -> Response:
    ctx = _ctx(request)
    tenants = await run_in_threadpool(_overviews, ctx.engine, operator.visible_tenant_ids())
    return JSONResponse({"connectors": [t.to_json() for t in tenants]})


@operator_required
async def api_connector(request: Request, operator: Operator) -> Response:
    ctx = _ctx(request)
    tenant = _tenant_in_scope(request.path_params["tenant"], operator)
    found = await run_in_threadpool(_one_overview, ctx.engine, tenant) if tenant else None
    if found is None:
        return not_found(request, operator)
    return JSONResponse(found.to_json())


# -- the Salesforce flow -------------------------------------------------------------------


def _tenant_and_connector(
    request: Request, operator: Operator, values: Mapping[str, Any]
) -> tuple[str, str] | Response:
    """The tenant and connector to connect, or the 400/404 refusal to answer instead."""
    try:
        tenant = identifiers.tenant_id(values.get("tenant"))
        connector = identifiers.connector_id(values.get("connector"))
    except identifiers.InvalidIdentifier as exc:
        return _refusal(request, 400, "Check the tenant id", str(exc), operator)
    if not operator.may_access(tenant):
        return not_found(request, operator)
    return tenant, connector


async def _start_from_form(request: Request, operator: Operator) -> Response:
    """Start a flow from a POSTed form: CSRF first, then scope, then the redirect to Salesforce.

    303 so the browser follows with a GET; the binding cookie rides on this same response, so
    only this browser can bring the callback home.
    """
    ctx = _ctx(request)
    form = await _form(request)
    if not _form_is_ours(operator, form):
        return message_page("Form expired", FORBIDDEN_FORM_MESSAGE, 403, operator)
    target = _tenant_and_connector(request, operator, form)
    if isinstance(target, Response):
        return target
    tenant, connector = target
    binding = FlowBinding.new(operator.credential_id)
    url = await run_in_threadpool(ctx.flow.start, tenant, connector, binding)
    log.info("operator credential %s started connecting tenant %s", operator.credential_id, tenant)
    response = RedirectResponse(url, status_code=303)
    ctx.set_binding(response, binding, ctx.flow.state_ttl_seconds)
    return response


@operator_required
async def authorize(request: Request, operator: Operator) -> Response:
    """POST: 303 to Salesforce's consent page for the tenant; the callback finishes the job."""
    return await _start_from_form(request, operator)


@operator_required
async def authorize_page(request: Request, operator: Operator) -> Response:
    """GET starts nothing (a link could be followed by anyone's browser): it offers the button.

    API clients are told to POST instead.
    """
    target = _tenant_and_connector(request, operator, request.query_params)
    if isinstance(target, Response):
        return target
    tenant, connector = target
    if not wants_html(request) or operator.session is None:
        message = f"Start a connection with POST {AUTHORIZE_PATH} (form fields tenant, connector)."
        return JSONResponse(
            {"error": "method_not_allowed", "message": message},
            status_code=405,
            headers={"Allow": "POST"},
        )
    return render(
        "connect.html",
        operator=operator,
        tenant_id=tenant,
        connector_id=connector,
        csrf_token=operator.session.csrf,
        authorize_path=AUTHORIZE_PATH,
    )


async def callback(request: Request) -> Response:
    """Where Salesforce sends the browser back: the signed, single-use state names the flow,
    and the binding cookie plus the operator's session must be those that started it."""
    ctx = _ctx(request)
    who = await run_in_threadpool(ctx.who, request)
    operator_id = who.credential_id if isinstance(who, Operator) else None
    presented = FlowBinding(request.cookies.get(ctx.cookies.binding_name), operator_id)
    page, outcome = await finish_callback(ctx.flow, request, presented)
    if outcome is not None and outcome.tenant_id is not None:
        ctx.clear_binding(page)  # this browser's flow ran: its nonce is spent
    return page


def stylesheet_endpoint() -> Callable[[Request], Awaitable[Response]]:
    """The one CSS file, read once; it is the same for everyone, so it may be cached."""
    css = (STATIC_DIR / "style.css").read_bytes()

    async def stylesheet(request: Request) -> Response:
        return Response(css, media_type="text/css", headers={"Cache-Control": STYLESHEET_CACHE})

    return stylesheet


def routes() -> list[Route]:
    return [
        Route("/", home, methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/connectors", connectors_page, methods=["GET"]),
        Route("/connectors/tenants", add_tenant, methods=["POST"]),
        Route("/connectors/{tenant}/disconnect", disconnect, methods=["POST"]),
        Route("/api/connectors", api_connectors, methods=["GET"]),
        Route(AUTHORIZE_PATH, authorize_page, methods=["GET"]),
        Route(AUTHORIZE_PATH, authorize, methods=["POST"]),
        Route(CALLBACK_PATH, callback, methods=["GET"]),
        Route("/api/connectors/{tenant}", api_connector, methods=["GET"]),
        Route("/static/style.css", stylesheet_endpoint(), methods=["GET"]),
    ]
