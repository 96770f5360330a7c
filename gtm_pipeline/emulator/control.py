"""The control API under /__emulator/: mutate the org, inject faults, set the latency profile,
tune settings, read counts.

Tests and the demo drive the emulator through this, over the same HTTPS as the connector. Every
call needs `X-Emulator-Token` (compared in constant time) and none of them counts against the
API budget or the call statistics. Bodies are plain JSON objects, errors `{"error": "..."}`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gtm_pipeline.emulator.errors import EmulatorError
from gtm_pipeline.emulator.faults import FaultRuleError
from gtm_pipeline.emulator.latency import NO_LATENCY, LatencyProfileError, parse_profile
from gtm_pipeline.emulator.paging import PageSizePolicy
from gtm_pipeline.emulator.state import EmulatorState
from gtm_pipeline.emulator.wire import json_response

PREFIX = "/__emulator"
Endpoint = Callable[[EmulatorState, Request], Awaitable[Response]]


class ControlError(ValueError):
    """A control request that cannot be carried out; becomes a 400 with the message."""


def _error(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status=status)


def _guarded(handler: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        state: EmulatorState = request.app.state.emulator
        presented = request.headers.get("x-emulator-token", "").encode()
        if not hmac.compare_digest(presented, state.control_token.encode()):
            return _error("missing or wrong X-Emulator-Token", status=401)
        try:
            return await handler(state, request)
        except (ControlError, FaultRuleError, LatencyProfileError) as exc:
            return _error(str(exc))

    return endpoint


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ControlError("the body must be JSON") from exc


def _as_list(payload: Any) -> list[Any]:
    return payload if isinstance(payload, list) else [payload]


async def mutations(state: EmulatorState, request: Request) -> Response:
    """Apply ops in order; on a bad op, the ones before it stay applied and the index is named."""
    ops = _as_list(await _json_body(request))

    def apply() -> list[dict]:
        results = []
        for index, op in enumerate(ops):
            try:
                results.append(state.org.mutate(op))
            except ValueError as exc:
                raise ControlError(f"op {index}: {exc} ({len(results)} op(s) applied)") from exc
        return results

    return json_response({"results": await run_in_threadpool(apply)})


async def add_faults(state: EmulatorState, request: Request) -> Response:
    rules = state.faults.add(_as_list(await _json_body(request)))
    if state.faults.take_immediate_expiry():
        state.oauth.expire_all_sessions()
    return json_response({"added": [rule.to_json() for rule in rules]})


async def list_faults(state: EmulatorState, request: Request) -> Response:
    return json_response({"rules": state.faults.rules()})


async def clear_faults(state: EmulatorState, request: Request) -> Response:
    return json_response({"cleared": state.faults.clear()})


async def set_latency(state: EmulatorState, request: Request) -> Response:
    """Replace the profile: a preset (`{"profile": "realistic"}`) or chosen numbers."""
    state.latency = parse_profile(await _json_body(request))
    return json_response({"latency": state.latency.to_json()})


async def read_latency(state: EmulatorState, request: Request) -> Response:
    return json_response({"latency": state.latency.to_json()})


async def clear_latency(state: EmulatorState, request: Request) -> Response:
    state.latency = NO_LATENCY
    return json_response({"latency": state.latency.to_json()})


def _positive(settings: dict[str, Any], key: str, kind: type = float) -> Any:
    value = settings[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ControlError(f"{key} must be a positive number")
    if kind is int and not float(value).is_integer():
        raise ControlError(f"{key} must be a whole number")
    return kind(value)


def _flag(settings: dict[str, Any], key: str) -> bool:
    if not isinstance(settings[key], bool):
        raise ControlError(f"{key} must be true or false")
    return settings[key]


CONFIG_KEYS = frozenset(
    {
        "page_size",
        "daily_api_limit",
        "daily_api_overage",
        "reset_usage",
        "session_lifetime",
        "code_lifetime",
        "locator_lifetime",
        "max_open_cursors",
        "rotate_refresh_tokens",
        "auto_approve",
        "fault_seed",
        "bulk_enabled",
        "bulk_job_polls",
        "bulk_job_seconds",
        "bulk_fail_next",
        "unreadable_objects",
    }
)


def _setter(target: object, name: str, value: object) -> Callable[[], None]:
    return lambda: setattr(target, name, value)


def apply_config(state: EmulatorState, settings: Any) -> None:
    """Validate every setting first, then apply them all, so a bad request changes nothing."""
    if not isinstance(settings, dict):
        raise ControlError("config must be a JSON object")
    unknown = sorted(set(settings) - CONFIG_KEYS)
    if unknown:
        raise ControlError(f"unknown setting(s): {', '.join(unknown)}")
    changes: list[Callable[[], None]] = []
    if "page_size" in settings:
        try:
            policy = PageSizePolicy.from_json(settings["page_size"])
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        changes.append(lambda: setattr(state, "page_policy", policy))
    if "daily_api_limit" in settings:
        limit = settings["daily_api_limit"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ControlError("daily_api_limit must be a whole number, 0 or more")
        changes.append(lambda: state.budget.set_limit(limit))
    if "daily_api_overage" in settings:
        overage = settings["daily_api_overage"]
        if isinstance(overage, bool) or not isinstance(overage, int) or overage < 0:
            raise ControlError("daily_api_overage must be a whole number, 0 or more")
        changes.append(lambda: state.budget.set_overage(overage))
    if settings.get("reset_usage") is not None and _flag(settings, "reset_usage"):
        changes.append(state.budget.reset)
    for key in ("session_lifetime", "code_lifetime"):
        if key in settings:
            changes.append(_setter(state.oauth, key, _positive(settings, key)))
    if "locator_lifetime" in settings:
        seconds = _positive(settings, "locator_lifetime")
        changes.append(lambda: setattr(state.cursors, "lifetime", seconds))
    if "max_open_cursors" in settings:
        count = _positive(settings, "max_open_cursors", int)
        changes.append(lambda: setattr(state.cursors, "max_open", count))
    if "rotate_refresh_tokens" in settings:
        rotate = _flag(settings, "rotate_refresh_tokens")
        changes.append(lambda: setattr(state.oauth, "rotate_refresh_tokens", rotate))
    if "auto_approve" in settings:
        auto = _flag(settings, "auto_approve")
        changes.append(lambda: setattr(state, "auto_approve", auto))
    if "fault_seed" in settings:
        seed = settings["fault_seed"]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ControlError("fault_seed must be an integer")
        changes.append(lambda: state.faults.reseed(seed))
    if "unreadable_objects" in settings:
        names = settings["unreadable_objects"]
        known = state.org.object_names()
        lowered = {n.lower() for n in known}
        if not isinstance(names, list) or not all(
            isinstance(n, str) and n.lower() in lowered for n in names
        ):
            raise ControlError(f"unreadable_objects must list object names of {', '.join(known)}")
        changes.append(lambda: state.org.set_unreadable(names))
    changes.extend(_bulk_changes(state, settings))
    for change in changes:
        change()


def _bulk_changes(state: EmulatorState, settings: dict[str, Any]) -> list[Callable[[], None]]:
    """Bulk API switches: access on/off, completion after N polls or S seconds, failing jobs."""
    changes: list[Callable[[], None]] = []
    current = state.bulk.settings
    updates: dict[str, Any] = {}
    if "bulk_enabled" in settings:
        updates["enabled"] = _flag(settings, "bulk_enabled")
    if "bulk_job_polls" in settings:
        updates["polls_to_complete"] = _positive(settings, "bulk_job_polls", int)
    if "bulk_job_seconds" in settings:
        seconds = settings["bulk_job_seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ControlError("bulk_job_seconds must be a number, 0 or more")
        updates["seconds_to_complete"] = float(seconds)
    if updates:
        chosen = replace(current, **updates)
        changes.append(lambda: setattr(state.bulk, "settings", chosen))
    if "bulk_fail_next" in settings:
        count = settings["bulk_fail_next"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ControlError("bulk_fail_next must be a whole number, 0 or more")
        changes.append(lambda: state.bulk.fail_next(count))
    return changes


async def config(state: EmulatorState, request: Request) -> Response:
    apply_config(state, await _json_body(request))
    return json_response(state.config_json())


async def read_config(state: EmulatorState, request: Request) -> Response:
    return json_response(state.config_json())


async def stats(state: EmulatorState, request: Request) -> Response:
    return json_response({**state.stats.snapshot(), "api_usage": state.budget.snapshot()})


async def reset_stats(state: EmulatorState, request: Request) -> Response:
    state.stats.reset()
    return json_response({**state.stats.snapshot(), "api_usage": state.budget.snapshot()})


async def truth(state: EmulatorState, request: Request) -> Response:
    sobject = request.path_params["sobject"]
    try:
        lines = await run_in_threadpool(state.truth_lines, sobject)
    except EmulatorError:
        return _error(f"unknown object {sobject!r}", status=404)
    return StreamingResponse(lines, media_type="application/x-ndjson")


async def update_counts(state: EmulatorState, request: Request) -> Response:
    sobject = request.path_params["sobject"]
    try:
        counts = state.org.api_update_counts(sobject)
    except EmulatorError:
        return _error(f"unknown object {sobject!r}", status=404)
    return json_response({"object": sobject, "counts": counts})


def routes() -> list[Route]:
    return [
        Route(f"{PREFIX}/mutations", _guarded(mutations), methods=["POST"]),
        Route(f"{PREFIX}/faults", _guarded(add_faults), methods=["POST"]),
        Route(f"{PREFIX}/faults", _guarded(list_faults), methods=["GET"]),
        Route(f"{PREFIX}/faults", _guarded(clear_faults), methods=["DELETE"]),
        Route(f"{PREFIX}/latency", _guarded(set_latency), methods=["POST"]),
        Route(f"{PREFIX}/latency", _guarded(read_latency), methods=["GET"]),
        Route(f"{PREFIX}/latency", _guarded(clear_latency), methods=["DELETE"]),
        Route(f"{PREFIX}/config", _guarded(config), methods=["POST"]),
        Route(f"{PREFIX}/config", _guarded(read_config), methods=["GET"]),
        Route(f"{PREFIX}/stats", _guarded(stats), methods=["GET"]),
        Route(f"{PREFIX}/stats/reset", _guarded(reset_stats), methods=["POST"]),
        Route(f"{PREFIX}/truth/{{sobject}}", _guarded(truth), methods=["GET"]),
        Route(f"{PREFIX}/updates/{{sobject}}", _guarded(update_counts), methods=["GET"]),
    ]
