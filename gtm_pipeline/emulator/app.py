"""The emulator's ASGI application: routes, JSON-array 404/405s, and the wire-fault layer.

`WireFaults` sits outside Starlette so it can do what an app normally cannot: cut a response
off mid-body (the client sees the connection close), answer before any route runs, or stall.
It also counts every request by endpoint kind, faulted ones included, because a test asking
"how many calls did the connector make" means calls sent, not calls that succeeded. Requests over
Salesforce's size limits (`head_limits`: 414, 431) are counted, then refused before any fault
rule or route sees them.

It also applies the latency profile (`latency`) to every data API call: the response is held
back once the app has produced it, for the profile's time per call plus its time per KB of the
body, with `asyncio.sleep` and no lock held, so concurrent requests wait side by side. OAuth and
control calls are never held. Under the `none` profile nothing is wrapped.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gtm_pipeline.emulator import control, data_api, head_limits, oauth_routes
from gtm_pipeline.emulator.errors import EmulatorError
from gtm_pipeline.emulator.latency import LatencyProfile
from gtm_pipeline.emulator.state import EmulatorState
from gtm_pipeline.emulator.wire import dump_json, error_response, method_not_allowed, not_found

_DATA_KINDS = (
    (re.compile(r"^query/?$"), "query"),
    (re.compile(r"^queryAll/?$"), "queryAll"),
    (re.compile(r"^(query|queryAll)/[^/]+$"), "query_more"),
    (re.compile(r"^sobjects/?$"), "describe"),
    (re.compile(r"^sobjects/[^/]+/describe/?$"), "describe"),
    (re.compile(r"^sobjects/[^/]+/[^/]+$"), "record"),
    (re.compile(r"^composite/sobjects/?$"), "composite"),
    (re.compile(r"^jobs/query/?$"), "bulk_create"),
    (re.compile(r"^jobs/query/[^/]+/results/?$"), "bulk_results"),
    (re.compile(r"^jobs/query/[^/]+/?$"), "bulk_job"),
)
_DATA_PREFIX = re.compile(r"^/services/data/v[^/]*/")
_OAUTH_KINDS = {
    ("GET", "/services/oauth2/authorize"): "authorize",
    ("POST", "/services/oauth2/authorize"): "consent",
    ("POST", "/services/oauth2/token"): "token",
    ("POST", "/services/oauth2/revoke"): "revoke",
}


class ConnectionDropped(Exception):
    """Raised after a deliberately truncated response so the server closes the connection."""


class _QuietDrops(logging.Filter):
    """Keep the server log free of the tracebacks that injected drops cause by design."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


def quiet_dropped_connections(logger_name: str = "uvicorn.error") -> None:
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


def call_kind(method: str, path: str) -> str | None:
    """The stats bucket of a request; None for control calls, which are never counted."""
    if path.startswith(control.PREFIX + "/") or path == control.PREFIX:
        return None
    oauth_kind = _OAUTH_KINDS.get((method, path))
    if oauth_kind is not None:
        return oauth_kind
    prefix = _DATA_PREFIX.match(path)
    if prefix is not None:
        rest = path[prefix.end() :]
        for pattern, kind in _DATA_KINDS:
            if pattern.match(rest):
                return kind
    return "other"


class WireFaults:
    """ASGI middleware: counts calls, applies the fault plan before and after the app, and holds
    data API responses back by the latency profile."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        kind = call_kind(method, path)
        if kind is None:
            await self.app(scope, receive, send)
            return
        self.state.stats.record(kind)
        refused = head_limits.refusal(scope)
        if refused is not None:  # Salesforce's front end answers before the API sees anything
            await refused(scope, receive, send)
            return
        decision = self.state.faults.decide(method, path)
        if decision.expire_sessions:
            self.state.oauth.expire_all_sessions()
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.status is not None:
            rule = decision.status
            error = EmulatorError(rule.status, rule.error_code, rule.message)
            await error_response(error)(scope, receive, self._delayed(path, send))
            return
        if decision.drop:  # delayed inside the cut: the client waits, then sees it cut short
            await self.app(scope, receive, self._delayed(path, _truncating(send)))
            return
        await self.app(scope, receive, self._delayed(path, send))

    def _delayed(self, path: str, send: Send) -> Send:
        """`send` held back by the latency profile for a data API call, else `send` itself."""
        profile = self.state.latency
        if profile.delays_responses and _DATA_PREFIX.match(path):
            return _delaying(send, profile)
        return send


def _delaying(send: Send, profile: LatencyProfile) -> Send:
    """A `send` that holds the response until its body is complete, then waits the profile's
    time for a body of that size before passing it all on. Only the waiting request waits."""
    held: list[Message] = []
    size, tail = 0, b""

    async def hold(message: Message) -> None:
        nonlocal size, tail
        if message["type"] not in ("http.response.start", "http.response.body"):
            await send(message)
            return
        held.append(message)
        if message["type"] == "http.response.start":
            return
        body: bytes = message.get("body", b"")
        size, tail = size + len(body), (tail + body[-4:])[-4:]
        if message.get("more_body", False):
            return
        headers = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in held[0].get("headers", [])
        }
        await asyncio.sleep(profile.body_delay(tail, size, headers))
        for queued in held:
            await send(queued)
        held.clear()

    return hold


def _truncating(send: Send) -> Send:
    """A `send` that delivers the headers and half the body, then breaks the connection."""
    started: dict[str, Any] = {}

    async def cut(message: Message) -> None:
        if message["type"] == "http.response.start":
            started.update(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        body: bytes = message.get("body", b"")
        headers = [(k, v) for k, v in started.get("headers", []) if k.lower() != b"content-length"]
        # Announce more than will ever arrive, so even an empty body reads as cut short.
        headers.append((b"content-length", str(len(body) + 1).encode()))
        await send({**started, "headers": headers})
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
        raise ConnectionDropped("connection dropped by an injected fault")

    return cut


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(not_found())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # Starlette only routes HTTPException here
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return error_response(method_not_allowed(request.method, allowed))
    if exc.status_code == 404:
        return error_response(not_found())
    body = [{"message": str(exc.detail), "errorCode": "INVALID_REQUEST"}]
    return Response(dump_json(body), status_code=exc.status_code, media_type="application/json")


def build_app(state: EmulatorState) -> ASGIApp:
    """The full application for one emulator state, fault layer outermost."""
    app = Starlette(
        routes=oauth_routes.routes() + data_api.routes() + control.routes(),
        exception_handlers={404: _not_found, HTTPException: _http_error},
    )
    app.router.redirect_slashes = False  # a wrong slash is a 404, as on Salesforce
    app.state.emulator = state
    return WireFaults(app, state)
