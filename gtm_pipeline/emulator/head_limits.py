"""Salesforce's request-size limits: an oversized URI or request head never reaches the API.

Salesforce documents ("Request Size Limits" in the REST API Developer Guide, and Knowledge article
000386264) that the URI and the headers of one REST call may take 16,384 bytes together: a call
over that gets 431 Request Header Fields Too Large, and one whose URI alone is over it gets 414
URI Too Long. Those answers come from Salesforce's web front end, not from the API, so they are
not JSON arrays: clients report Jetty's page (`<h1>Bad Message 414</h1><pre>reason: URI Too
Long</pre>`), served here as is, with `Connection: close`, no `Sforce-Limit-Info`, and nothing
taken from the API budget (the call statistics still count the call: it was sent).

Where Salesforce starts counting is not documented. Here the URI is the request target as sent
(path, `?` and query string, percent-encoded) and each header costs `name: value` plus CRLF. The
measured limit has moved between releases (16,057 to 16,088 characters in reports), so a client
should stay well below it: a `WHERE Id IN (...)` list costs 27 bytes an Id URL-encoded by
`requests` (18 characters, `%27` twice, `%2C`), so fewer than 600 Ids fill the whole allowance.

uvicorn's httptools parser gives no deterministic answer past 65,535 URI bytes (it refuses the
URL and may write its 400 more than once), so `HeadLimitProtocol` keeps at most
`MAX_URI_BYTES + 1` bytes of the target and records its true length in the scope; the refusal
itself is decided by `refusal` in the ASGI layer, the same for every size.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Scope

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _BaseProtocol
except ImportError:  # pragma: no cover - httptools is an optional uvicorn extra
    # h11 refuses heads over 16 KB itself (400); the checks below still cover smaller ones.
    from uvicorn.protocols.http.h11_impl import H11Protocol as _BaseProtocol  # type: ignore[assignment]

MAX_URI_BYTES = 16_384
MAX_HEAD_BYTES = 16_384  # URI and headers together
TARGET_BYTES = "gtm_emulator.request_target_bytes"  # scope key set by HeadLimitProtocol
_REASONS = {414: "URI Too Long", 431: "Request Header Fields Too Large"}


def uri_bytes(scope: Scope) -> int:
    """The length of the request target as sent, as the protocol measured it or rebuilt."""
    measured = scope.get(TARGET_BYTES)
    if measured is not None:
        return int(measured)
    query = scope.get("query_string", b"")
    return len(scope.get("raw_path") or b"") + (1 + len(query) if query else 0)


def header_bytes(scope: Scope) -> int:
    """Every header line: name, `: `, value and CRLF."""
    return sum(len(name) + len(value) + 4 for name, value in scope.get("headers", []))


def refused_status(scope: Scope) -> int | None:
    """414 when the URI is too long, 431 when URI and headers together are, else None."""
    uri = uri_bytes(scope)
    if uri > MAX_URI_BYTES:
        return 414
    if uri + header_bytes(scope) > MAX_HEAD_BYTES:
        return 431
    return None


def refusal(scope: Scope) -> Response | None:
    """The front end's answer to an oversized request, or None when the request may go on."""
    status = refused_status(scope)
    if status is None:
        return None
    body = f"<h1>Bad Message {status}</h1><pre>reason: {_REASONS[status]}</pre>"
    return Response(
        body,
        status_code=status,
        media_type="text/html;charset=iso-8859-1",
        headers={"Connection": "close"},
    )


class HeadLimitProtocol(_BaseProtocol):  # type: ignore[misc, valid-type]
    """httptools' protocol keeping at most `MAX_URI_BYTES + 1` bytes of the request target.

    The true length goes into the scope under `TARGET_BYTES`, so `refusal` answers 414 whatever
    the size, instead of uvicorn's parser failing on targets over 65,535 bytes.
    """

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[TARGET_BYTES] = 0  # type: ignore[literal-required]

    def on_url(self, url: bytes) -> None:
        self.scope[TARGET_BYTES] += len(url)  # type: ignore[literal-required]
        room = MAX_URI_BYTES + 1 - len(self.url)
        if room > 0:
            super().on_url(url[:room])
