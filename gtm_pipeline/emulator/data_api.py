"""The REST data API under /services/data/vXX.X/: query(All), query_more, describe (global and per
object), collections, single-record updates and (routes from `bulk`) Bulk API 2.0 query jobs.

Every call goes through `_data_call`: session check (401), budget (403), then the handler, then
`Sforce-Limit-Info` on success. Work on the org runs in a worker thread so one large query does
not stall the event loop that serves other clients and the control API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gtm_pipeline.emulator import bulk_api
from gtm_pipeline.emulator.errors import EmulatorError
from gtm_pipeline.emulator.org import MAX_COLLECTION
from gtm_pipeline.emulator.paging import Cursor, batch_size_from_header
from gtm_pipeline.emulator.state import EmulatorState
from gtm_pipeline.emulator.wire import (
    dump_json,
    error_response,
    invalid_session,
    json_response,
    not_found,
)

VERSION = re.compile(r"^v(\d{2,3}\.\d)$")

Handler = Callable[[EmulatorState, Request, str], Awaitable[Response]]


def bearer_token(request: Request) -> str | None:
    """The token of `Authorization: Bearer …` (or the older `OAuth …` scheme, also accepted)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "oauth") and token.strip():
        return token.strip()
    return None


def _data_call(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        state: EmulatorState = request.app.state.emulator
        match = VERSION.match(request.path_params.get("version", ""))
        try:
            if match is None:
                raise not_found()
            token = bearer_token(request)
            if token is None or not state.oauth.session_valid(token):
                raise invalid_session()
            used, limit = state.budget.consume()
            response = await handler(state, request, match.group(1))
        except EmulatorError as exc:
            headers = {"WWW-Authenticate": "Token"} if exc.status == 401 else None
            return error_response(exc, headers)
        response.headers["Sforce-Limit-Info"] = state.budget.limit_info(used, limit)
        return response

    return endpoint


def _page_response(
    state: EmulatorState, cursor: Cursor, start: int, version: str, *, first: bool
) -> Response:
    """Slice one page and serialize it; a first page that leaves more keeps its cursor open.

    A COUNT() result has no records, so its one page is `{"totalSize": count, "done": true,
    "records": []}`.
    """
    result = cursor.result
    size = state.page_policy.page_size(cursor.batch_size, cursor.number, start)
    stop = min(start + size, result.served_size)
    records = result.page(start, stop)
    done = stop >= result.served_size
    body: dict[str, object] = {"totalSize": result.total_size, "done": done}
    if first and not done:
        state.cursors.keep(cursor)
    if not done:
        body["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor.locator}-{stop}"
    body["records"] = records
    return Response(dump_json(body), media_type="application/json;charset=UTF-8")


def _run_query(
    state: EmulatorState, soql: str, include_deleted: bool, batch_size: int, version: str
) -> Response:
    result = state.org.execute_query(soql, include_deleted=include_deleted, api_version=version)
    cursor = state.cursors.new(result, batch_size)
    return _page_response(state, cursor, 0, version, first=True)


def _query(include_deleted: bool) -> Handler:
    async def handler(state: EmulatorState, request: Request, version: str) -> Response:
        soql = request.query_params.get("q", "")
        if not soql.strip():
            raise EmulatorError(400, "MALFORMED_QUERY", "A query string has to be specified")
        batch_size = batch_size_from_header(request.headers.get("sforce-query-options"))
        return await run_in_threadpool(
            _run_query, state, soql, include_deleted, batch_size, version
        )

    return handler


async def _query_more(state: EmulatorState, request: Request, version: str) -> Response:
    cursor, start = state.cursors.resolve(request.path_params["locator"])
    return await run_in_threadpool(_page_response, state, cursor, start, version, first=False)


async def _describe_global(state: EmulatorState, request: Request, version: str) -> Response:
    described = await run_in_threadpool(state.org.describe_global, version)
    return Response(dump_json(described), media_type="application/json;charset=UTF-8")


async def _describe(state: EmulatorState, request: Request, version: str) -> Response:
    sobject = request.path_params["sobject"]
    described = await run_in_threadpool(state.org.describe, sobject)
    return Response(dump_json(described), media_type="application/json;charset=UTF-8")


def _json_body(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EmulatorError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from exc


def _collection_request(raw: bytes) -> tuple[list[dict], bool]:
    """Check the sObject Collections envelope; per-record checks belong to the org."""
    payload = _json_body(raw)
    if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
        raise EmulatorError(400, "JSON_PARSER_ERROR", "The body needs a 'records' array")
    records = payload["records"]
    if not all(isinstance(r, dict) for r in records):
        raise EmulatorError(400, "JSON_PARSER_ERROR", "Every entry of 'records' must be an object")
    if len(records) > MAX_COLLECTION:
        raise EmulatorError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {MAX_COLLECTION} records "
            "into this call",
        )
    all_or_none = payload.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise EmulatorError(400, "JSON_PARSER_ERROR", "'allOrNone' must be true or false")
    return records, all_or_none


async def _composite_update(state: EmulatorState, request: Request, version: str) -> Response:
    records, all_or_none = _collection_request(await request.body())
    results = await run_in_threadpool(
        lambda: state.org.update_collection(records, all_or_none=all_or_none)
    )
    return Response(dump_json(results), media_type="application/json;charset=UTF-8")


# A failed single-record PATCH answers with its error code and the record's fields. The
# reference documents collections, not this call: which codes mean "no such record" (404) is
# the emulator's reading of Salesforce's behaviour, every other failure is a 400.
_RECORD_NOT_FOUND = frozenset({"INVALID_TYPE", "MALFORMED_ID", "INVALID_CROSS_REFERENCE_KEY"})


async def _record_update(state: EmulatorState, request: Request, version: str) -> Response:
    """PATCH sobjects/{sobject}/{id}: 204 when the record was updated, else a JSON-array error."""
    fields = _json_body(await request.body())
    if not isinstance(fields, dict):
        raise EmulatorError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    sobject, record_id = request.path_params["sobject"], request.path_params["record_id"]
    result = await run_in_threadpool(state.org.update_record, sobject, record_id, fields)
    if result["success"]:
        return Response(status_code=204)
    error = result["errors"][0]
    if error["statusCode"] in _RECORD_NOT_FOUND:
        raise not_found()
    status = 404 if error["statusCode"] == "ENTITY_IS_DELETED" else 400
    body = {
        "message": error["message"],
        "errorCode": error["statusCode"],
        "fields": error["fields"],
    }
    return json_response([body], status=status)


def routes() -> list[Route]:
    """The data API routes; both slash forms are listed because clients use both.

    Unknown paths and methods fall through to the app's 404/405 handlers (JSON arrays too).
    """
    base = "/services/data/{version}"
    query, query_all = _data_call(_query(False)), _data_call(_query(True))
    more, describe = _data_call(_query_more), _data_call(_describe)
    describe_global = _data_call(_describe_global)
    composite, record = _data_call(_composite_update), _data_call(_record_update)
    return [
        Route(f"{base}/query", query, methods=["GET"]),
        Route(f"{base}/query/", query, methods=["GET"]),
        Route(f"{base}/queryAll", query_all, methods=["GET"]),
        Route(f"{base}/queryAll/", query_all, methods=["GET"]),
        Route(f"{base}/query/{{locator}}", more, methods=["GET"]),
        Route(f"{base}/queryAll/{{locator}}", more, methods=["GET"]),
        Route(f"{base}/sobjects", describe_global, methods=["GET"]),
        Route(f"{base}/sobjects/", describe_global, methods=["GET"]),
        Route(f"{base}/sobjects/{{sobject}}/describe", describe, methods=["GET"]),
        Route(f"{base}/sobjects/{{sobject}}/describe/", describe, methods=["GET"]),
        Route(f"{base}/sobjects/{{sobject}}/{{record_id}}", record, methods=["PATCH"]),
        Route(f"{base}/composite/sobjects", composite, methods=["PATCH"]),
        Route(f"{base}/composite/sobjects/", composite, methods=["PATCH"]),
        *bulk_api.routes(_data_call),
    ]
