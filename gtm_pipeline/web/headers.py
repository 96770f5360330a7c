"""Security headers on every response the app sends.

`form-action` is deliberately absent from the policy: browsers also apply it to the redirects
that follow a form submission, and the connect flow's chain leaves for Salesforce, which may hop
between its login and My Domain hosts. Every form the app shows comes from its own autoescaped
templates, and no script runs at all (no inline script is allowed by `default-src 'self'`).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# Pages are per-operator or carry tokens; a response that may be cached says so itself.
DEFAULT_CACHE_CONTROL = "no-store"


def apply_security_headers(headers: MutableHeaders) -> None:
    """Set the policy headers, and no-store unless the response chose its own caching."""
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value
    if "cache-control" not in headers:
        headers["Cache-Control"] = DEFAULT_CACHE_CONTROL


class SecurityHeadersMiddleware:
    """Pure ASGI, so streaming and error responses get the headers too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                apply_security_headers(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)
