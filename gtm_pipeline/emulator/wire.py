"""Response shapes shared by every route: Salesforce's JSON-array errors and compact JSON.

simple-salesforce reads `body[0]["errorCode"]`, so every API error, including 404s and 405s
that the router raises itself, must leave the server as a JSON array.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from gtm_pipeline.emulator.errors import EmulatorError

JSON_TYPE = "application/json;charset=UTF-8"


def dump_json(content: Any) -> bytes:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(dump_json(content), status_code=status, headers=headers, media_type=JSON_TYPE)


def error_response(exc: EmulatorError, headers: dict[str, str] | None = None) -> Response:
    return json_response(exc.body(), status=exc.status, headers=headers)


def not_found() -> EmulatorError:
    return EmulatorError(404, "NOT_FOUND", "The requested resource does not exist")


def invalid_session() -> EmulatorError:
    return EmulatorError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def method_not_allowed(method: str, allowed: str) -> EmulatorError:
    return EmulatorError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}"
    )
