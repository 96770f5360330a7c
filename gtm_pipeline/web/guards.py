"""What every request passes before a route sees it, for the web app and the callback listener.

- Security headers on every response (`headers.py`).
- The Host header must name the callback URL's host or a loopback host, else 400
  (Starlette's TrustedHostMiddleware). A DNS-rebinding page makes the browser send its own
  host name, so it is refused; and no Host value ever reaches a generated link.
- No redirect for a missing or extra trailing slash: Starlette builds that redirect from the
  Host header, which is the client's to choose. A wrong slash is a 404.
- The body is read up to MAX_REQUEST_BODY_BYTES and no further, then 413 (Starlette's
  RequestBodyLimitMiddleware): a larger Content-Length is refused before a byte of the body is
  read, and a body without one (chunked) is cut off as soon as the bytes streamed pass the
  limit, so the server never buffers more than the limit.
- Forms are parsed by `read_form`: no files, a field count the route chooses, and at most
  MAX_FORM_FIELD_BYTES per field name or value, checked by Starlette's parser as it reads
  (a refusal is Starlette's 400).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.routing import BaseRoute

from gtm_pipeline.config import LOOPBACK_ADDRESSES, LOOPBACK_NAMES
from gtm_pipeline.web.headers import SecurityHeadersMiddleware

# The largest legitimate form (the mapping page: at most 400 short fields) is a few tens of KiB.
MAX_REQUEST_BODY_BYTES = 256 * 1024
# Field names and values are ids, Salesforce field paths, transform names and CSRF tokens.
MAX_FORM_FIELD_BYTES = 8 * 1024


def _host_header_form(host: str) -> str:
    """A host as it appears in a Host header (IPv6 literals in brackets), lowercased."""
    return f"[{host}]" if ":" in host else host.lower()


LOOPBACK_HOSTS = tuple(
    sorted(_host_header_form(str(host)) for host in (*LOOPBACK_NAMES, *LOOPBACK_ADDRESSES))
)


def trusted_hosts(callback_url: str) -> list[str]:
    """The Host header values to answer: the callback URL's host, and the loopback hosts.

    Browsers reach the app at the callback's host (directly, or through a TLS-terminating
    proxy that keeps the Host header); the loopback hosts keep it usable from the machine it
    runs on (or a forwarded port) whatever the callback says. No page elsewhere can make a
    browser send a loopback Host header for its own origin.
    """
    host = urlsplit(callback_url).hostname or ""
    return sorted({*LOOPBACK_HOSTS, *([_host_header_form(host)] if host else [])})


def guarded_app(
    routes: Sequence[BaseRoute], *, allowed_hosts: Collection[str], **options: Any
) -> Starlette:
    """A Starlette app behind every guard above; `options` go to Starlette as they are."""
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeadersMiddleware),  # outermost: refusals below get the headers
            Middleware(
                TrustedHostMiddleware, allowed_hosts=list(allowed_hosts), www_redirect=False
            ),
            Middleware(RequestBodyLimitMiddleware, max_body_size=MAX_REQUEST_BODY_BYTES),
        ],
        **options,
    )
    app.router.redirect_slashes = False
    return app


async def read_form(request: Request, *, max_fields: int) -> FormData:
    """The request's form with no files, at most `max_fields` fields of bounded size."""
    return await request.form(
        max_files=0, max_fields=max_fields, max_part_size=MAX_FORM_FIELD_BYTES
    )
